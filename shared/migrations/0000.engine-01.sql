-- The shared engine's tables, created in every service's schema.

-- Transactional outbox: written in the same transaction as the state change, published by the relay.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    topic       text        NOT NULL,
    key         bytea,
    value       bytea       NOT NULL,
    headers     jsonb       NOT NULL DEFAULT '[]',
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at     timestamptz
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- Consumed offsets, committed with the effects they caused: the engine resumes from here.
CREATE TABLE consumer_offsets (
    group_id     text        NOT NULL,
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    next_offset  bigint      NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Event ids already applied per consumer group: guards against producers that publish twice.
CREATE TABLE applied_events (
    group_id    text        NOT NULL,
    event_id    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, event_id)
);
CREATE INDEX applied_events_applied_at ON applied_events (applied_at);

-- State of pure detector rules, per rule and key.
CREATE TABLE detector_state (
    rule        text        NOT NULL,
    key         text        NOT NULL,
    state       jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule, key)
);

-- Responses to HTTP writes, by Idempotency-Key, so a retrying caller gets the same answer.
CREATE TABLE idempotency_keys (
    idempotency_key  text        NOT NULL,
    route            text        NOT NULL,
    request_hash     text        NOT NULL,
    status_code      integer     NOT NULL,
    response         jsonb       NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (idempotency_key, route)
);
