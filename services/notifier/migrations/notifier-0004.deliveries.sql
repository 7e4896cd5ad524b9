-- depends: notifier-0001.routing

-- One row per message to one recipient on one channel (Saleor's delivery model): what to send,
-- where it stands, when to try next. The contact is kept to send and retry, never returned by
-- the API or logged: the API shows `contact_masked`.
CREATE TABLE deliveries (
    id               uuid        PRIMARY KEY,  -- uuid5 of (request_id, channel)
    request_id       text        NOT NULL,
    source_event_id  text        NOT NULL,     -- the request or routed anomaly that asked for it
    channel          text        NOT NULL,
    recipient_kind   text        NOT NULL,
    recipient_id     text        NOT NULL,
    contact          text,
    contact_masked   text,
    template         text        NOT NULL,
    language         text        NOT NULL,
    severity         text,
    params           jsonb       NOT NULL DEFAULT '{}',
    subject          text        NOT NULL DEFAULT '',
    body_text        text        NOT NULL DEFAULT '',
    body_html        text,
    dedup_key        text        NOT NULL,
    status           text        NOT NULL
        CHECK (status IN ('pending', 'retrying', 'delivered', 'failed')),
    attempts         int         NOT NULL DEFAULT 0,
    attempt_limit    int         NOT NULL,      -- raised by each resend
    next_attempt_at  timestamptz,               -- NULL once delivered or failed
    deferred_reason  text,                      -- quiet_hours, rate_limited, retry
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    delivered_at     timestamptz,
    UNIQUE (request_id, channel)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'retrying');
CREATE INDEX deliveries_dedup ON deliveries (dedup_key, created_at DESC);
CREATE INDEX deliveries_created ON deliveries (created_at DESC, id DESC);
CREATE INDEX deliveries_recipient ON deliveries (recipient_id, created_at DESC);

-- Every try, whatever its outcome: the answer's status and first bytes, and how long it took.
CREATE TABLE delivery_attempts (
    delivery_id      uuid        NOT NULL REFERENCES deliveries (id),
    number           int         NOT NULL,
    outcome          text        NOT NULL CHECK (outcome IN ('delivered', 'retryable', 'permanent')),
    response_status  int,
    response_snippet text        NOT NULL DEFAULT '',
    error            text,
    started_at       timestamptz NOT NULL,
    duration_s       double precision NOT NULL,
    PRIMARY KEY (delivery_id, number)
);

-- Sends per channel per fixed window: the rate limit holds across the job's replicas.
CREATE TABLE channel_rate_windows (
    channel       text        NOT NULL,
    window_start  timestamptz NOT NULL,
    sent          int         NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, window_start)
);
