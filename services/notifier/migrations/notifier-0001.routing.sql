-- depends: 0000.engine-01

-- Fingerprints already routed: an anomaly is routed once, whoever detected it and however often
-- it arrives (redelivery, restart, a second detector driver).
CREATE TABLE routed_anomalies (
    fingerprint   text        PRIMARY KEY,
    rule          text        NOT NULL,
    routes        text[]      NOT NULL,
    queues        text[]      NOT NULL,
    event_id      text        NOT NULL,  -- the anomaly.detected.v1 that was routed
    routed_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX routed_anomalies_routed_at ON routed_anomalies (routed_at);

-- One row per notification and channel; in_app notifications are these rows themselves.
CREATE TABLE notifications (
    id               uuid        PRIMARY KEY,
    channel          text        NOT NULL,
    queue            text        NOT NULL,
    route            text        NOT NULL,
    rule             text        NOT NULL,
    fingerprint      text        NOT NULL,
    severity         text        NOT NULL,
    summary          text        NOT NULL,
    labels           jsonb       NOT NULL DEFAULT '{}',
    routed_event_id  text        NOT NULL,  -- the anomaly.routed.v1 that caused it
    status           text        NOT NULL DEFAULT 'recorded' CHECK (status IN ('recorded')),
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (fingerprint, queue, channel)
);
CREATE INDEX notifications_created ON notifications (created_at DESC, id DESC);
CREATE INDEX notifications_queue_created ON notifications (queue, created_at DESC);
CREATE INDEX notifications_rule_created ON notifications (rule, created_at DESC);
