-- +goose Up
-- Collections: promises to pay and custom triggers on claims (folded by the
-- claims projection like every claim field), disputes (projection
-- "disputes"), campaigns and their enrollments (projection "campaigns").
-- Money is numeric, never float.
ALTER TABLE claims
    ADD COLUMN promises           jsonb   NOT NULL DEFAULT '[]', -- []domain.Promise, oldest first
    ADD COLUMN active_promise_due date,                          -- due date of the active promise, if any
    ADD COLUMN triggers           integer NOT NULL DEFAULT 0;
-- The scheduler's sweeps: open claims by original due date, active promises.
CREATE INDEX claims_open_due ON claims (original_due_date) WHERE status = 'open';
CREATE INDEX claims_active_promise ON claims (active_promise_due) WHERE active_promise_due IS NOT NULL;

CREATE TABLE disputes (
    tenant_id   text        NOT NULL,
    id          text        NOT NULL,
    sandbox     boolean     NOT NULL DEFAULT false,
    account_id  text        NOT NULL,
    claim_id    text        NOT NULL DEFAULT '', -- '' : the whole account
    debtor_ids  text[]      NOT NULL DEFAULT '{}',
    reason      text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    reference   text        NOT NULL DEFAULT '',
    meta        jsonb,
    status      text        NOT NULL,            -- open | resolved | withdrawn
    outcome     text        NOT NULL DEFAULT '', -- resolved: upheld | rejected
    note        text        NOT NULL DEFAULT '',
    version     bigint      NOT NULL,
    opened_at   timestamptz NOT NULL,
    closed_at   timestamptz,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX disputes_open_account ON disputes (tenant_id, account_id) WHERE status = 'open';
CREATE INDEX disputes_open_claim ON disputes (tenant_id, claim_id) WHERE status = 'open' AND claim_id <> '';
CREATE INDEX disputes_debtors ON disputes USING gin (debtor_ids);

CREATE TABLE campaigns (
    tenant_id   text        NOT NULL,
    id          text        NOT NULL,
    sandbox     boolean     NOT NULL DEFAULT false,
    name        text        NOT NULL,
    type        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    steps       jsonb       NOT NULL,            -- []domain.CampaignStep
    meta        jsonb,
    status      text        NOT NULL,            -- active | paused | completed
    reason      text        NOT NULL DEFAULT '',
    version     bigint      NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE enrollments (
    tenant_id     text        NOT NULL,
    id            text        NOT NULL,
    sandbox       boolean     NOT NULL DEFAULT false,
    campaign_id   text        NOT NULL,
    target_type   text        NOT NULL,          -- account | claim | statement
    target_id     text        NOT NULL,
    account_id    text        NOT NULL DEFAULT '',
    claim_id      text        NOT NULL DEFAULT '',
    statement_id  text        NOT NULL DEFAULT '',
    debtor_ids    text[]      NOT NULL DEFAULT '{}',
    currency      text        NOT NULL DEFAULT '',
    anchor_date   date        NOT NULL,
    start_date    date        NOT NULL,
    next_step     integer     NOT NULL,
    steps_fired   integer     NOT NULL DEFAULT 0,
    next_due_date date,                           -- anchor + the next step's offset; NULL when no step is left
    status        text        NOT NULL,          -- active | completed | cancelled
    reason        text        NOT NULL DEFAULT '',
    runs          integer     NOT NULL DEFAULT 1,
    version       bigint      NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX enrollments_campaign ON enrollments (tenant_id, campaign_id, id);
CREATE INDEX enrollments_target ON enrollments (tenant_id, target_id);
-- The scheduler's sweep: active enrollments with a step due.
CREATE INDEX enrollments_due ON enrollments (next_due_date) WHERE status = 'active';

-- +goose Down
DROP TABLE enrollments;
DROP TABLE campaigns;
DROP TABLE disputes;
DROP INDEX claims_active_promise;
DROP INDEX claims_open_due;
ALTER TABLE claims DROP COLUMN triggers, DROP COLUMN active_promise_due, DROP COLUMN promises;
