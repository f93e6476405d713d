-- +goose Up
-- stream_heads: projection of every stream's head (the spine's proof
-- projection; also what operators look at first).
CREATE TABLE stream_heads (
    tenant_id       text        NOT NULL,
    stream_id       text        NOT NULL,
    stream_type     text        NOT NULL,
    version         bigint      NOT NULL,
    event_count     bigint      NOT NULL,
    last_event_id   text        NOT NULL,
    last_event_type text        NOT NULL,
    last_position   bigint      NOT NULL,
    first_recorded  timestamptz NOT NULL,
    last_recorded   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, stream_id)
);

-- +goose Down
DROP TABLE stream_heads;
