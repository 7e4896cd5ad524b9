"""Every Prometheus metric orderguard exports, defined once. Base units, bounded labels."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Measured from an event's own time or a row's write: minutes happen (a backlog, a late publisher).
DELAY_BUCKETS = (*LATENCY_BUCKETS, 30.0, 60.0, 300.0, 900.0, 3600.0)

BUILD_INFO = Info("orderguard_build", "Version and role of this orderguard process")

HTTP_REQUESTS = Counter(
    "orderguard_http_requests_total",
    "HTTP requests handled, by route template, method and status code",
    ["service", "route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "orderguard_http_request_duration_seconds",
    "HTTP request duration by route template",
    ["service", "route", "method"],
    buckets=LATENCY_BUCKETS,
)

EVENTS_CONSUMED = Counter(
    "orderguard_events_consumed_total",
    "Kafka records taken by the engine, by topic, consumer group and outcome",
    ["topic", "group", "outcome"],  # outcome: applied, duplicate, skipped, retry, dlq
)
HANDLER_EVENTS_APPLIED = Counter(
    "orderguard_handler_events_applied_total",
    "Events an engine's group handed to each of its handlers, committed",
    ["group", "handler"],  # handler: a use-case consumer or a detector of the service's worker
)
BATCH_DURATION = Histogram(
    "orderguard_engine_batch_duration_seconds",
    "Time to apply one batch in one database transaction",
    ["group"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "orderguard_engine_batch_records",
    "Records per engine batch",
    ["group"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
CONSUMER_LAG = Gauge(
    "orderguard_consumer_lag_records",
    "Records between the consumer position and the partition high watermark",
    ["topic", "group", "partition"],
)
CONSUMER_TIME_LAG = Gauge(
    "orderguard_consumer_time_lag_seconds",
    "Age of the last record applied, per partition",
    ["topic", "group", "partition"],
)
REBALANCES = Counter(
    "orderguard_consumer_rebalances_total", "Partition assignments received", ["group"]
)
DEAD_LETTERS = Counter(
    "orderguard_dead_letters_total",
    "Records sent to a dead-letter topic, by reason",
    ["topic", "group", "reason"],  # reason: malformed, invalid, unknown_type, oversized, failed
)

OUTBOX_BACKLOG = Gauge(
    "orderguard_outbox_backlog_messages",
    "Unsent outbox rows, counted by the publishing relay when it has caught up or every pass",
    ["schema"],
)
OUTBOX_OLDEST_UNSENT_AGE = Gauge(
    "orderguard_outbox_oldest_unsent_age_seconds",
    "Age of the oldest unsent outbox row (0 when none)",
    ["schema"],
)
OUTBOX_PARKED = Counter(
    "orderguard_outbox_parked_total",
    "Outbox rows Kafka refused for good (too large, invalid topic), parked with the reason",
    ["schema", "topic"],
)
OUTBOX_PARKED_ROWS = Gauge(
    "orderguard_outbox_parked_messages",
    "Parked outbox rows waiting for an operator (counted by the publishing relay)",
    ["schema"],
)
OUTBOX_PUBLISHED = Counter(
    "orderguard_outbox_published_total", "Outbox messages published to Kafka", ["topic"]
)
OUTBOX_RELAY_LATENCY = Histogram(
    "orderguard_outbox_relay_latency_seconds",
    "Time from outbox write to acknowledged publish",
    ["schema"],
    buckets=DELAY_BUCKETS,
)

ANOMALIES_DETECTED = Counter(
    "orderguard_anomalies_detected_total",
    "Anomalies raised by detector rules",
    ["rule", "severity"],
)
LATE_EVENTS = Counter(
    "orderguard_late_events_total",
    "Events a detector applied although their event time was behind its partition's clock"
    " (never dropped; a deadline may have fired before they arrived)",
    ["group"],
)
DETECTION_LATENCY = Histogram(
    "orderguard_detection_latency_seconds",
    "From the time of the event that made a rule fire to the anomaly being written",
    ["rule"],
    buckets=DELAY_BUCKETS,
)
# No rule label: anyone may publish to anomalies.detected, so rule names are not a bounded set.
ANOMALIES_ROUTED = Counter(
    "orderguard_anomalies_routed_total", "Anomalies routed to a team queue", ["queue", "outcome"]
)  # outcome: routed, duplicate, unrouted
NOTIFICATIONS = Counter(
    "orderguard_notifications_total",
    "Notifications recorded (in_app) and deliveries on outgoing channels, by channel and outcome",
    ["channel", "outcome"],
)  # outcome: recorded, duplicate, skipped (in_app); planned, deferred, delivered, retry, failed, resend
NOTIFICATION_ATTEMPT_DURATION = Histogram(
    "orderguard_notification_attempt_duration_seconds",
    "Time of one delivery attempt on an outgoing channel, by channel and outcome",
    ["channel", "outcome"],  # outcome: delivered, retryable, permanent
    buckets=LATENCY_BUCKETS,
)

TABLE_ROWS = Gauge(
    "orderguard_table_rows",
    "Rows of a table under retention (exact below 100k, the planner's estimate above)",
    ["schema", "table"],
)
TABLE_OLDEST_ROW_AGE = Gauge(
    "orderguard_table_oldest_row_age_seconds",
    "Age of the oldest row of a table under retention, by the column that dates it",
    ["schema", "table"],
)
JOB_RUNS = Counter(
    "orderguard_scheduled_job_runs_total",
    "Runs of a scheduled job (payment timeouts, auto-releases, escalations), by outcome",
    ["job", "outcome"],  # outcome: ok, error
)
JOB_ITEMS = Counter(
    "orderguard_scheduled_job_items_total",
    "Due items a scheduled job handled (orders timed out, holds released, ...)",
    ["job"],
)

RECYCLE_BIN_MOVES = Counter(
    "orderguard_recycle_bin_moves_total",
    "Moves of orders through the recycle bin, by move and category",
    [
        "move",
        "category",
    ],  # move: moved, reason_added, restored, archived, purged; category: closed set
)
RECYCLE_BIN_IN_BIN = Gauge(
    "orderguard_recycle_bin_orders",
    "Orders in the recycle bin now, by category (counted by the workers every job interval)",
    ["category"],
)

# Work items (services/notifier/work_items). Live = open or claimed; recomputed from the table
# by every notifier worker, so it is right after a restart (take max across replicas).
WORK_ITEMS_OPEN = Gauge(
    "orderguard_work_items_open",
    "Work items open or claimed (not yet resolved or dismissed), by team and severity",
    ["team", "severity"],
)
WORK_ITEM_TRANSITIONS = Counter(
    "orderguard_work_item_transitions_total",
    "Work item changes by team: created, attached, claimed, resolved, auto_resolved, dismissed,"
    " reopened, escalated, reminded, reassigned",
    ["team", "transition"],
)

STOCK_MOVEMENTS = Counter(
    "orderguard_inventory_stock_movements_total",
    "Rows written to the stock ledger, by movement (received, reserved, committed, ...)",
    ["movement"],
)

CARRIER_WEBHOOK_SCANS = Counter(
    "orderguard_carrier_webhook_scans_total",
    "Scans carriers POSTed to the logistics webhook, by outcome",
    ["outcome"],  # outcome: accepted, unauthenticated, replayed, invalid
)

# Routing (notifier): the routing file in force, silences, inhibition and route groups.
ROUTING_RELOADS = Counter(
    "orderguard_routing_reloads_total",
    "Attempts to swap in a changed routing file, by outcome",
    ["outcome"],  # outcome: ok, rejected
)
ROUTING_CONFIG_INFO = Gauge(
    "orderguard_routing_config_info",
    "The routing file in force (1 for its version, a digest of its text)",
    ["version"],
)
ROUTING_CONFIG_LAST_RELOAD_OK = Gauge(
    "orderguard_routing_config_last_reload_successful",
    "1 if the last attempt to load the routing file succeeded, 0 if it was rejected",
)
ANOMALIES_SUPPRESSED = Counter(
    "orderguard_anomalies_suppressed_total",
    "Anomalies kept back from routing (recorded, routed once released), by reason",
    ["reason"],  # reason: silenced, inhibited
)
ANOMALIES_RELEASED = Counter(
    "orderguard_anomalies_released_total",
    "Suppressed anomalies routed after their silence ended or their inhibiting source resolved",
    ["reason"],
)
ROUTE_GROUP_FLUSHES = Counter(
    "orderguard_route_group_flushes_total",
    "Flushes of route groups, by kind",
    ["kind"],  # kind: first, update, repeat
)
