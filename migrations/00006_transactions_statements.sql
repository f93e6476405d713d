-- +goose Up
-- The ledger projection gains two read models: transactions (every
-- money-moving event of an account, signed by its effect on what is owed)
-- and statements (one per debtor, calendar month and currency). Both are
-- folds of the event store, so the ledger projection is rebuilt from it:
-- its tables are emptied and its checkpoint removed, and the projector
-- catches up from the first event when the server starts.

CREATE TABLE transactions (
    tenant_id       text        NOT NULL,
    id              text        NOT NULL, -- the event's id
    sandbox         boolean     NOT NULL DEFAULT false,
    account_id      text        NOT NULL,
    kind            text        NOT NULL, -- an entry kind but reporting, or amendment, refund, chargeback (of a payment)
    amount          numeric     NOT NULL, -- + raises what is owed, - lowers it
    currency        text        NOT NULL,
    entry_reference text        NOT NULL DEFAULT '',
    payment_id      text        NOT NULL DEFAULT '',
    occurred_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX transactions_sandbox ON transactions (tenant_id, sandbox, id);
CREATE INDEX transactions_account ON transactions (tenant_id, account_id, id);

CREATE TABLE statements (
    tenant_id        text        NOT NULL,
    id               text        NOT NULL, -- domain.StatementID(debtor, month, currency)
    sandbox          boolean     NOT NULL DEFAULT false,
    debtor_id        text        NOT NULL,
    currency         text        NOT NULL,
    month            text        NOT NULL, -- YYYY-MM (UTC)
    opening_balance  numeric     NOT NULL DEFAULT 0,
    charges          numeric     NOT NULL DEFAULT 0,
    credits          numeric     NOT NULL DEFAULT 0,
    closing_balance  numeric     NOT NULL DEFAULT 0,
    due              numeric     NOT NULL DEFAULT 0, -- what is still owed of the month's charges
    status           text        NOT NULL DEFAULT 'open',
    line_count       integer     NOT NULL DEFAULT 0,
    last_activity_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX statements_debtor ON statements (tenant_id, debtor_id, currency, month);
CREATE INDEX statements_sandbox ON statements (tenant_id, sandbox, id);

-- Statement lines are read by account and posting time; an account's
-- entries are listed in posting order, its payments by id.
CREATE INDEX ledger_entries_posted ON ledger_entries (tenant_id, account_id, posted_at);
CREATE INDEX ledger_entries_seq ON ledger_entries (tenant_id, account_id, seq);
CREATE INDEX payments_account_id ON payments (tenant_id, account_id, id);

TRUNCATE accounts, ledger_entries, payments;
DELETE FROM projection_checkpoints WHERE name = 'ledger';

-- +goose Down
DROP INDEX payments_account_id;
DROP INDEX ledger_entries_seq;
DROP INDEX ledger_entries_posted;
DROP TABLE statements;
DROP TABLE transactions;
