-- +goose Up
-- claims: every claim's current state (projection "claims"), the fold of
-- its claim.* events exactly as (*domain.Claim).Apply folds them. Money is
-- numeric (trimmed scale), never float.
CREATE TABLE claims (
    tenant_id           text        NOT NULL,
    id                  text        NOT NULL,
    sandbox             boolean     NOT NULL DEFAULT false,
    reference           text        NOT NULL DEFAULT '',
    account_id          text        NOT NULL DEFAULT '',
    entry_reference     text        NOT NULL DEFAULT '',
    primary_debtor_id   text        NOT NULL DEFAULT '',
    amount              numeric     NOT NULL DEFAULT 0, -- what is still owed
    original_amount     numeric     NOT NULL DEFAULT 0, -- as (re)created
    credits             numeric     NOT NULL DEFAULT 0,
    debits              numeric     NOT NULL DEFAULT 0,
    paid                numeric     NOT NULL DEFAULT 0,
    currency            text        NOT NULL DEFAULT '',
    total_fees          numeric     NOT NULL DEFAULT 0,
    original_due_date   date,
    current_due_date    date,
    product_reference   text        NOT NULL DEFAULT '',
    portfolio_reference text        NOT NULL DEFAULT '',
    creditor_reference  text        NOT NULL DEFAULT '',
    scores              jsonb       NOT NULL DEFAULT '[]',
    meta                jsonb,
    status              text        NOT NULL,
    resolution          text        NOT NULL DEFAULT '',
    status_reason       text        NOT NULL DEFAULT '',
    overdue_thresholds  integer[]   NOT NULL DEFAULT '{}',
    recreations         integer     NOT NULL DEFAULT 0,
    version             bigint      NOT NULL,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    resolved_at         timestamptz,
    PRIMARY KEY (tenant_id, id)
);
-- Lookups by the creditor's reference (uniqueness is the command side's).
CREATE INDEX claims_reference ON claims (tenant_id, sandbox, reference);
CREATE INDEX claims_account ON claims (tenant_id, account_id);
CREATE INDEX claims_primary_debtor ON claims (tenant_id, primary_debtor_id) WHERE primary_debtor_id <> '';

-- +goose Down
DROP TABLE claims;
