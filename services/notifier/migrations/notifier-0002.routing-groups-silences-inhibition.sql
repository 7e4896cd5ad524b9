-- depends: notifier-0001.routing

-- Every anomaly the router has seen, by fingerprint: the dedup claim for firing and resolved
-- updates, and the firing sources inhibition rules look up (by their `equal` label values).
CREATE TABLE anomaly_states (
    fingerprint  text        PRIMARY KEY,
    rule         text        NOT NULL,
    labels       jsonb       NOT NULL,  -- what matchers see: labels + rule, severity, team
    anomaly      jsonb       NOT NULL,  -- the latest anomaly.detected.v1 data
    status       text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    outcome      text        CHECK (outcome IN ('routed', 'silenced', 'inhibited')),  -- NULL: resolved before it was ever seen firing
    traceparent  text,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX anomaly_states_firing_labels ON anomaly_states USING gin (labels)
    WHERE status = 'firing';

-- Where a routed anomaly went, so its resolution goes to the same queues and groups.
ALTER TABLE routed_anomalies ADD COLUMN matches jsonb NOT NULL DEFAULT '[]';
ALTER TABLE routed_anomalies ADD COLUMN resolved_at timestamptz;

-- Anomalies kept back by a silence or an inhibition: recorded and countable, never lost. A row
-- is released (and the anomaly routed) when its silence ends or its inhibiting source resolves.
CREATE TABLE suppressed_anomalies (
    fingerprint         text        PRIMARY KEY REFERENCES anomaly_states ON DELETE CASCADE,
    reason              text        NOT NULL CHECK (reason IN ('silenced', 'inhibited')),
    silence_id          uuid,
    inhibit_rule        text,
    source_fingerprint  text,
    event_id            text        NOT NULL,
    suppressed_at       timestamptz NOT NULL DEFAULT now(),
    released_at         timestamptz
);
CREATE INDEX suppressed_by_silence ON suppressed_anomalies (silence_id) WHERE silence_id IS NOT NULL;
CREATE INDEX suppressed_by_source ON suppressed_anomalies (source_fingerprint)
    WHERE released_at IS NULL;

-- Every anomaly a silence muted, even after it was released: GET /silences/{id} counts them.
CREATE TABLE silenced_anomalies (
    silence_id   uuid        NOT NULL,
    fingerprint  text        NOT NULL,
    muted_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (silence_id, fingerprint)
);

CREATE TABLE silences (
    id          uuid        PRIMARY KEY,
    matchers    text[]      NOT NULL,
    author      text        NOT NULL,
    comment     text        NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL CHECK (ends_at > starts_at),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expired_by  text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX silences_ends_at ON silences (ends_at);

-- Groups of a route (one per group_key) and their durable timers: a restart neither loses nor
-- repeats a flush. The timers are the route's when the group was created.
CREATE TABLE route_groups (
    group_key           text        PRIMARY KEY,
    route               text        NOT NULL,
    queue               text        NOT NULL,
    channels            text[]      NOT NULL,
    group_wait_ms       bigint      NOT NULL,
    group_interval_ms   bigint      NOT NULL,
    repeat_interval_ms  bigint,
    created_at          timestamptz NOT NULL,
    next_flush_at       timestamptz,
    last_flush_at       timestamptz,
    flushes             integer     NOT NULL DEFAULT 0
);
CREATE INDEX route_groups_due ON route_groups (next_flush_at) WHERE next_flush_at IS NOT NULL;

CREATE TABLE route_group_members (
    group_key    text        NOT NULL REFERENCES route_groups ON DELETE CASCADE,
    fingerprint  text        NOT NULL,
    severity     text        NOT NULL,  -- after the route's raise_severity_to
    firing       boolean     NOT NULL,
    pending      boolean     NOT NULL,  -- added or resolved since the last flush
    added_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_key, fingerprint)
);
