-- +goose Up
-- Tenants and their credentials. These are command-side tables written in
-- the same transaction as the events that record them (tenant.created,
-- api_key.created, api_key.revoked), because authentication cannot wait for
-- a projection.
CREATE TABLE tenants (
    id         text        PRIMARY KEY,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id           text        PRIMARY KEY,
    tenant_id    text        NOT NULL REFERENCES tenants (id),
    name         text        NOT NULL,
    prefix       text        NOT NULL,             -- display only
    secret_hash  bytea       NOT NULL UNIQUE CHECK (length(secret_hash) = 32), -- SHA-256 of the secret
    mode         text        NOT NULL CHECK (mode IN ('live', 'test')),
    scopes       text[]      NOT NULL DEFAULT '{}',
    read_only    boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, mode, id);

-- Short-lived bearer tokens from POST /v1/oauth2/token (client credentials).
CREATE TABLE access_tokens (
    token_hash bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    key_id     text        NOT NULL REFERENCES api_keys (id),
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX access_tokens_expiry ON access_tokens (expires_at);

-- Idempotency-Key records (IETF httpapi idempotency-key draft semantics),
-- scoped by tenant, kept at least 24 h.
CREATE TABLE idempotency_keys (
    tenant_id        text        NOT NULL,
    key              text        NOT NULL,
    request_hash     bytea       NOT NULL,
    method           text        NOT NULL,
    path             text        NOT NULL,
    state            text        NOT NULL CHECK (state IN ('in_flight', 'complete')),
    locked_until     timestamptz,
    response_status  integer,
    response_headers jsonb,
    response_body    bytea,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- stream_heads learns the mode of its stream so sandbox and live reads stay apart.
ALTER TABLE stream_heads ADD COLUMN sandbox boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE stream_heads DROP COLUMN sandbox;
DROP TABLE idempotency_keys;
DROP TABLE access_tokens;
DROP TABLE api_keys;
DROP TABLE tenants;
