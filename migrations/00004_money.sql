-- +goose Up
-- The money read models: debtors (projection "debtors") and accounts, their
-- ledger entries and payments (projection "ledger"). Every row is a fold of
-- the event store; money is numeric, never float.

CREATE TABLE debtors (
    tenant_id    text        NOT NULL,
    id           text        NOT NULL,
    sandbox      boolean     NOT NULL DEFAULT false,
    reference    text        NOT NULL DEFAULT '',
    type         text        NOT NULL DEFAULT '',
    first_name   text        NOT NULL DEFAULT '',
    last_name    text        NOT NULL DEFAULT '',
    company_name text        NOT NULL DEFAULT '',
    email        text        NOT NULL DEFAULT '',
    phone        text        NOT NULL DEFAULT '',
    birth_date   date,
    address      jsonb,
    locale       text        NOT NULL DEFAULT '',
    meta         jsonb,
    version      bigint      NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
-- Lookups by the creditor's reference. Not unique: uniqueness of references
-- is the command side's concern; a read model only mirrors the events.
CREATE INDEX debtors_reference ON debtors (tenant_id, sandbox, reference) WHERE reference <> '';

CREATE TABLE accounts (
    tenant_id    text        NOT NULL,
    id           text        NOT NULL,
    sandbox      boolean     NOT NULL DEFAULT false,
    reference    text        NOT NULL DEFAULT '',
    currency     text        NOT NULL,
    debtor_ids   text[]      NOT NULL DEFAULT '{}',
    products     jsonb       NOT NULL DEFAULT '[]',
    scores       jsonb       NOT NULL DEFAULT '[]',
    mandates     jsonb       NOT NULL DEFAULT '[]',
    meta         jsonb,
    opened_at    timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint      NOT NULL,
    entry_count  integer     NOT NULL DEFAULT 0, -- ledger entries posted: the next entry's seq - 1
    -- The money sums, as (*domain.Account).Balance defines them.
    invoiced     numeric     NOT NULL DEFAULT 0,
    fees         numeric     NOT NULL DEFAULT 0,
    paid         numeric     NOT NULL DEFAULT 0, -- payment entries + completed, refunded and charged-back payments
    adjustments  numeric     NOT NULL DEFAULT 0, -- signed
    discounts    numeric     NOT NULL DEFAULT 0,
    chargebacks  numeric     NOT NULL DEFAULT 0, -- chargeback entries + charged-back payments
    refunded     numeric     NOT NULL DEFAULT 0,
    credit       numeric     NOT NULL DEFAULT 0, -- unallocated credit (negative: spent credit taken back)
    outstanding  numeric     NOT NULL GENERATED ALWAYS AS
                 (invoiced + fees + adjustments - paid - discounts + chargebacks + refunded) STORED,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX accounts_reference ON accounts (tenant_id, sandbox, reference) WHERE reference <> '';
CREATE INDEX accounts_debtor_ids ON accounts USING gin (debtor_ids);

CREATE TABLE ledger_entries (
    tenant_id         text        NOT NULL,
    account_id        text        NOT NULL,
    reference         text        NOT NULL,
    kind              text        NOT NULL,
    amount            numeric     NOT NULL, -- signed for adjustments; current (amendments change it)
    currency          text        NOT NULL,
    due_date          date,                 -- effective: fees and adjustments without one are due on their posting date
    original_due_date date,                 -- invoices without one: their due date
    product_reference text        NOT NULL DEFAULT '',
    target_reference  text        NOT NULL DEFAULT '',
    fee_type          text        NOT NULL DEFAULT '',
    reason            text        NOT NULL DEFAULT '',
    payment_reference text        NOT NULL DEFAULT '',
    provider          text        NOT NULL DEFAULT '',
    meta              jsonb,
    allocations       jsonb       NOT NULL DEFAULT '[]', -- credits: the debits they paid; chargebacks: what they reversed
    credit_allocations jsonb      NOT NULL DEFAULT '[]', -- chargebacks: unallocated credit applied to the debits they re-opened
    seq               integer     NOT NULL,              -- posting order in the account, from 1
    posted_at         timestamptz NOT NULL,
    paid              numeric     NOT NULL DEFAULT 0,    -- debits: credits allocated to them
    charged_back      numeric     NOT NULL DEFAULT 0,    -- payment entries: reversed by chargeback entries
    settled_at        timestamptz,                       -- debits: when paid reached amount
    amendment_count   integer     NOT NULL DEFAULT 0,
    sandbox           boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, account_id, reference)
);
-- Aging and statements read an account's entries (by due date in the
-- query); reports read one kind over a period.
CREATE INDEX ledger_entries_account ON ledger_entries (tenant_id, account_id, due_date);
CREATE INDEX ledger_entries_kind ON ledger_entries (tenant_id, kind, posted_at);

CREATE TABLE payments (
    tenant_id         text        NOT NULL,
    id                text        NOT NULL,
    account_id        text        NOT NULL,
    reference         text        NOT NULL DEFAULT '',
    amount            numeric     NOT NULL,
    currency          text        NOT NULL,
    status            text        NOT NULL,
    method            text        NOT NULL DEFAULT '',
    provider          text        NOT NULL DEFAULT '',
    tracking_id       text        NOT NULL DEFAULT '',
    match_strategy    text        NOT NULL DEFAULT '',
    product_reference text        NOT NULL DEFAULT '',
    fee_order         text[]      NOT NULL DEFAULT '{}',
    allocations       jsonb       NOT NULL DEFAULT '[]', -- set on completion
    credit_allocations jsonb      NOT NULL DEFAULT '[]', -- on reversal: unallocated credit applied to the debits it re-opened
    to_credit         numeric     NOT NULL DEFAULT 0,    -- what no open debit could take at completion
    recorded_at       timestamptz NOT NULL,
    completed_at      timestamptz,
    failed_at         timestamptz,
    failure_reason    text        NOT NULL DEFAULT '',
    reversed_at       timestamptz,
    reversal_reason   text        NOT NULL DEFAULT '',
    meta              jsonb,
    sandbox           boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX payments_account ON payments (tenant_id, account_id, recorded_at);
CREATE INDEX payments_reference ON payments (tenant_id, account_id, reference) WHERE reference <> '';

-- +goose Down
DROP TABLE payments;
DROP TABLE ledger_entries;
DROP TABLE accounts;
DROP TABLE debtors;
DELETE FROM projection_checkpoints WHERE name IN ('debtors', 'ledger');
