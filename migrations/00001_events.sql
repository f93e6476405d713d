-- +goose Up
-- events: the only source of truth. Append-only (enforced below), one row per
-- event, hash-chained per stream.
CREATE TABLE events (
    position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    id             text        NOT NULL UNIQUE,
    tenant_id      text        NOT NULL,
    stream_type    text        NOT NULL,
    stream_id      text        NOT NULL,
    stream_version bigint      NOT NULL CHECK (stream_version > 0),
    type           text        NOT NULL,
    schema_version integer     NOT NULL DEFAULT 1 CHECK (schema_version > 0),
    data           jsonb       NOT NULL,
    metadata       jsonb       NOT NULL DEFAULT '{}',
    recorded_at    timestamptz NOT NULL,
    hash           bytea       NOT NULL CHECK (length(hash) = 32),
    CONSTRAINT events_stream_version_key UNIQUE (tenant_id, stream_id, stream_version)
);

-- The gap-free global order is (tx_id, position): readers only read below
-- the oldest running transaction (pg_snapshot_xmin), so no event can appear
-- behind a reader's checkpoint later.
CREATE INDEX events_global_order ON events (tx_id, position);

-- +goose StatementBegin
CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events is append-only: % is not allowed (corrections are new events)', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();
-- Also fire under session_replication_role = replica (logical-replication
-- appliers and pg_restore --disable-triggers style bypasses).
ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_update_delete;
ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_truncate;

-- relay_log: one row per batch the relay got acknowledged by JetStream. seq is
-- the JetStream stream sequence of the batch's last event (== the event's
-- ordinal in the global order); event_id and (tx_id, position) identify it.
-- The newest row is the relay's checkpoint; older rows map a stream sequence
-- back to the event store when a lost JetStream tail must be republished.
CREATE TABLE relay_log (
    seq         bigint      PRIMARY KEY CHECK (seq > 0),
    event_id    text        NOT NULL,
    tx_id       bigint      NOT NULL,
    position    bigint      NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- projection_checkpoints: each projection's progress, written in the same
-- transaction as its rows (exactly-once effect). seq is the relay sequence
-- (ordinal in the global order) of the last applied event.
CREATE TABLE projection_checkpoints (
    name       text        PRIMARY KEY,
    seq        bigint      NOT NULL DEFAULT 0,
    tx_id      bigint      NOT NULL DEFAULT 0,
    position   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE projection_checkpoints;
DROP TABLE relay_log;
DROP TABLE events;
DROP FUNCTION events_append_only();
