-- depends: 0000.engine-02

-- An outbox row Kafka can never take (too large, a topic that cannot exist) is parked with the
-- reason instead of blocking the relay; the relay publishes the rows after it.
ALTER TABLE outbox ADD COLUMN parked_at timestamptz, ADD COLUMN parked_reason text;
DROP INDEX outbox_unsent;
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL AND parked_at IS NULL;
CREATE INDEX outbox_parked ON outbox (id) WHERE parked_at IS NOT NULL;
