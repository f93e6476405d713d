-- +goose Up
-- claim_sync_checkpoints: how far the claim sync (workers.ClaimSync) has
-- followed the event store's gap-free global order: (tx_id, position) of
-- the last event of the last batch whose managed claims it brought in line
-- with their invoices. One row per sync ('claims'). It is written after the
-- batch's claim commands committed, and only ever moves forward; a crash in
-- between replays the batch, which the idempotent sync decision absorbs.
CREATE TABLE claim_sync_checkpoints (
    name       text        PRIMARY KEY,
    tx_id      bigint      NOT NULL DEFAULT 0,
    position   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE claim_sync_checkpoints;
