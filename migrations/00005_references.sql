-- +goose Up
-- stream_references: the creditor's own references (accountReference,
-- debtorReference) are unique per tenant and mode. Written in the same
-- transaction as the stream's first event, so a retry after an
-- Idempotency-Key expired still cannot create a second account or debtor.
CREATE TABLE stream_references (
    tenant_id   text    NOT NULL,
    sandbox     boolean NOT NULL,
    stream_type text    NOT NULL,
    reference   text    NOT NULL,
    stream_id   text    NOT NULL,
    PRIMARY KEY (tenant_id, sandbox, stream_type, reference)
);

-- +goose Down
DROP TABLE stream_references;
