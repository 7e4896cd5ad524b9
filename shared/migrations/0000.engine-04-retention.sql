-- depends: 0000.engine-01

-- Retention (shared/retention.py) finds expired idempotency keys by their age.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
