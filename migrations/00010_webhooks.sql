-- +goose Up
-- Webhooks (issue 6).
--
-- webhook_endpoints and webhook_secrets are command-side tables, written in
-- the same transaction as the webhook_endpoint.* events that record every
-- change (like api_keys): the API and the dispatcher cannot wait for a
-- projection. The events carry no secret; webhook_secrets holds each secret
-- sealed (AES-256-GCM) under ARREARS_WEBHOOK_SECRETS_KEY, or under the
-- installation key in webhook_sealing_key when that is unset.
CREATE TABLE webhook_endpoints (
    id              text        PRIMARY KEY,
    tenant_id       text        NOT NULL,
    mode            text        NOT NULL CHECK (mode IN ('live', 'test')),
    url             text        NOT NULL,
    description     text        NOT NULL DEFAULT '',
    event_types     text[]      NOT NULL,
    enabled         boolean     NOT NULL DEFAULT true,
    disabled_reason text,
    secret_prefix   text        NOT NULL,   -- display only: "whsec_" and a few characters
    version         bigint      NOT NULL,   -- of its event stream
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    deleted_at      timestamptz
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, mode, id);

CREATE TABLE webhook_secrets (
    endpoint_id text        NOT NULL REFERENCES webhook_endpoints (id),
    created_at  timestamptz NOT NULL,
    sealed      bytea       NOT NULL,       -- nonce ‖ AES-256-GCM(secret)
    expires_at  timestamptz,                -- NULL: the current secret
    PRIMARY KEY (endpoint_id, created_at)
);

-- The installation's sealing key when ARREARS_WEBHOOK_SECRETS_KEY is unset.
CREATE TABLE webhook_sealing_key (
    id  integer PRIMARY KEY CHECK (id = 1),
    key bytea   NOT NULL CHECK (length(key) = 32)
);

-- Owned by the webhook_outbox projection (rebuilt from events):
-- each endpoint's subscription as of the projection's checkpoint, and one
-- row per (endpoint, event) to deliver, with a deterministic id.
CREATE TABLE webhook_subscriptions (
    endpoint_id text    PRIMARY KEY,
    tenant_id   text    NOT NULL,
    sandbox     boolean NOT NULL,
    event_types text[]  NOT NULL,
    enabled     boolean NOT NULL,
    deleted     boolean NOT NULL
);
CREATE INDEX webhook_subscriptions_tenant ON webhook_subscriptions (tenant_id, sandbox);

CREATE TABLE webhook_outbox (
    id          text    PRIMARY KEY,        -- whdl_ + hash(endpoint id, event id)
    tenant_id   text    NOT NULL,
    sandbox     boolean NOT NULL,
    endpoint_id text    NOT NULL,
    event_id    text    NOT NULL,
    event_type  text    NOT NULL,
    tx_id       bigint  NOT NULL,           -- the event's place in the global order
    position    bigint  NOT NULL
);
CREATE INDEX webhook_outbox_order ON webhook_outbox (tx_id, position, endpoint_id);

-- The dispatcher's state: one row per delivery (taken in from webhook_outbox,
-- or created by a replay or a test ping). Never rebuilt: a projection
-- rebuild produces the same outbox ids, which are already here.
CREATE TABLE webhook_deliveries (
    id               text        PRIMARY KEY,   -- the webhook-id header
    tenant_id        text        NOT NULL,
    sandbox          boolean     NOT NULL,
    endpoint_id      text        NOT NULL,
    event_id         text,                      -- NULL for a test ping
    event_type       text        NOT NULL,
    payload          bytea,                     -- test pings only; events are read from the event store
    origin           text        NOT NULL CHECK (origin IN ('event', 'replay', 'test')),
    status           text        NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled')),
    attempts         integer     NOT NULL DEFAULT 0,   -- HTTP attempts so far
    failures         integer     NOT NULL DEFAULT 0,   -- failed attempts since creation or the last redelivery: the retry step
    next_attempt_at  timestamptz,
    lease_until      timestamptz,
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    completed_at     timestamptz,
    created_at       timestamptz NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);

-- How far the dispatchers have taken in webhook_outbox, in its order.
CREATE TABLE webhook_intake (
    id          integer PRIMARY KEY CHECK (id = 1),
    tx_id       bigint  NOT NULL,
    position    bigint  NOT NULL,
    endpoint_id text    NOT NULL
);
INSERT INTO webhook_intake VALUES (1, 0, 0, '');

-- +goose Down
DROP TABLE webhook_intake;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_outbox;
DROP TABLE webhook_subscriptions;
DROP TABLE webhook_sealing_key;
DROP TABLE webhook_secrets;
DROP TABLE webhook_endpoints;
