-- depends: 0000.engine-01

-- Deadlines of timed detector rules: when each key's `tick` is due. Written in the same
-- transaction as the key's state; the engine sweeps, per partition it owns, those due on that
-- partition's event-time clock. A key's deadline lives on the partition of its last event.
CREATE TABLE detector_deadlines (
    rule        text        NOT NULL,
    key         text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    due_at      timestamptz NOT NULL,
    PRIMARY KEY (rule, key)
);
CREATE INDEX detector_deadlines_due ON detector_deadlines (rule, topic, partition, due_at);
