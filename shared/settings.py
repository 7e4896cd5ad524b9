"""The one settings object. Every value comes from ORDERGUARD_* environment variables."""

from __future__ import annotations

from decimal import Decimal
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orderguard.shared.notifier_settings import (
    ChannelSettings,
    ConsoleOidcSettings,
    DeliverySettings,
)

SERVICES = ("order", "inventory", "logistics", "aftersales", "notifier")
ServiceName = Literal["order", "inventory", "logistics", "aftersales", "notifier"]

# "order" is an SQL keyword, so every service's schema is named for what it keeps.
SCHEMAS: dict[str, str] = {
    "order": "orders",
    "inventory": "inventory",
    "logistics": "logistics",
    "aftersales": "aftersales",
    "notifier": "notifier",
}


class DelayCompensation(BaseModel):
    """What a customer gets for a delayed shipment: a coupon (yuan) or points."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["coupon", "points"]
    amount: Decimal = Field(gt=0, decimal_places=2)


class RetentionSettings(BaseModel):
    """How long rows that grow with traffic are kept (docs/operations.md lists every table)."""

    model_config = ConfigDict(extra="forbid")

    # A retried HTTP write within this window gets the first answer again.
    idempotency_keys_s: float = Field(default=24 * 3600, gt=0)
    # Anomalies the router saw, once resolved: a copy re-sent later than this is routed again.
    resolved_anomalies_s: float = Field(default=7 * 24 * 3600, gt=0)
    # Anomalies never resolved (one-off rules, a detector gone): forgotten after this.
    open_anomalies_s: float = Field(default=90 * 24 * 3600, gt=0)
    # Finished deliveries (delivered or failed) and their attempts: the delivery log's depth.
    deliveries_s: float = Field(default=30 * 24 * 3600, gt=0)
    # How often each retention job looks; how many rows one transaction deletes at most.
    interval_s: float = Field(default=300.0, gt=0)
    batch_max: int = Field(default=1000, ge=1)


class Settings(BaseSettings):
    # Nested sections read ORDERGUARD_<SECTION>__<FIELD>, e.g. ORDERGUARD_CHANNELS__SMS__URL.
    model_config = SettingsConfigDict(
        env_prefix="ORDERGUARD_", env_nested_delimiter="__", extra="ignore"
    )

    database_url: str = "postgresql://postgres@localhost:5432/orderguard"
    kafka_bootstrap: str = "localhost:9092"
    # True on the embedded Tansu broker: it rejects InitProducerId, so no idempotent producer.
    kafka_embedded_compat: bool = False
    # Lets several deployments (or test runs) share one cluster without sharing topics.
    topic_prefix: str = ""
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)

    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8000, ge=0, le=65535)

    # API key -> scopes. "*" grants every scope.
    api_keys: dict[SecretStr, list[str]] = Field(default_factory=dict)

    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"

    # Engine tuning (batch size and fetch wait bound both throughput and latency).
    consumer_batch_max: int = Field(default=2000, ge=1)
    # Tansu's fetch does not wake on new data: latency follows this wait.
    consumer_fetch_max_wait_ms: int = Field(default=10, ge=0)
    # An engine without records for this long pauses its fetching until a relay announces a
    # topic it reads (shared/engine/idle.py), probing once every `consumer_idle_probe_s` for
    # publishers outside orderguard. 0: never pause (fetch continuously).
    consumer_idle_after_s: float = Field(default=1.0, ge=0)
    consumer_idle_probe_s: float = Field(default=0.25, gt=0)
    consumer_session_timeout_ms: int = Field(default=6000, ge=1000)
    consumer_heartbeat_interval_ms: int = Field(default=1000, ge=100)
    consumer_max_retries: int = Field(default=3, ge=0)
    consumer_retry_backoff_s: float = Field(default=0.2, ge=0)
    outbox_batch_max: int = Field(default=2000, ge=1)
    outbox_poll_interval_s: float = Field(default=1.0, gt=0)
    outbox_linger_ms: int = Field(default=2, ge=0)
    # Applied event ids are kept this long: a producer's duplicate older than that is applied again.
    # OpenTelemetry: export spans over OTLP/HTTP to this collector (e.g. http://otel-collector:4318);
    # unset, nothing is exported.
    otel_exporter_otlp_endpoint: str | None = None
    # How often scheduled jobs (timeouts, auto-releases, escalations) look for due work.
    job_interval_s: float = Field(default=5.0, gt=0)
    dedup_retention_s: float = Field(default=7 * 24 * 3600, gt=0)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)

    # The operators' console (services/notifier/console): session lifetimes; cookies marked
    # Secure (browsers treat http://127.0.0.1 and localhost as secure); the order service's URL
    # the console calls server-side with its own key (scope `delegate`) on behalf of a person.
    console_session_idle_s: float = Field(default=30 * 60, gt=0)
    console_session_absolute_s: float = Field(default=12 * 3600, gt=0)
    console_cookie_secure: bool = True
    console_order_url: str | None = None
    console_api_key: SecretStr | None = None
    # OpenID Connect sign-in (ORDERGUARD_CONSOLE_OIDC__ISSUER, __CLIENT_ID, ...); None: off.
    console_oidc: ConsoleOidcSettings | None = None

    routing_file: str | None = None
    # How often the routing file's modification time is checked for a hot reload (0: never).
    routing_reload_interval_s: float = Field(default=5.0, ge=0)
    # Detector params and their overrides per label (shared/detection/config.py); None: built in.
    detectors_file: str | None = None
    # The built-in default of stock.low's `threshold` (the detectors file and a SKU's own win).
    default_low_stock_threshold: int = Field(default=10, ge=0)
    # Detector clocks (event time): an event this far behind its partition's latest is still on
    # time; deadlines fire this much after they are due.
    detector_allowed_lateness_s: float = Field(default=30.0, ge=0)
    # A partition without records for this long follows the wall clock, so silence is detected.
    detector_idle_after_s: float = Field(default=10.0, gt=0)

    # Order recycle bin: anomaly rule -> bin category for anomalies whose labels name an order_id
    # (categories checked at start-up); entries without a case are archived after the quiet
    # period; archived entries lose their personal data after the retention.
    recycle_bin_anomaly_rules: dict[str, str] = Field(
        default_factory=lambda: {"order.duplicate": "abnormal"}
    )
    recycle_bin_quiet_period_s: float = Field(default=30 * 24 * 3600, gt=0)
    recycle_bin_retention_s: float = Field(default=180 * 24 * 3600, gt=0)
    # After-sales: the "N days, no reason" return window (from delivery, else payment).
    aftersales_return_window_days: int = Field(default=7, ge=0)
    # Evidence uploads: bytes stored under this directory (a volume in Kubernetes), limits.
    aftersales_attachments_dir: str = "var/aftersales/attachments"
    aftersales_attachment_max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    aftersales_attachment_types: list[str] = Field(
        default_factory=lambda: [
            "image/jpeg",
            "image/png",
            "image/webp",
            "application/pdf",
            "video/mp4",
            "text/plain",
        ]
    )
    # Work items (services/notifier/work_items): seconds to claim per severity (the time to
    # resolve is the routing file's time limit of the severity);
    # reminders of unclaimed urgent (P1/P2) items; how long a resolved group may fire again and
    # reopen its item; escalation tiers.
    work_item_claim_within_s: dict[str, float] = Field(
        default_factory=lambda: {"P1": 1800.0, "P2": 7200.0, "P3": 28800.0, "P4": 86400.0}
    )
    work_item_reminder_every_s: float = Field(default=900.0, gt=0)
    work_item_reopen_window_s: float = Field(default=3600.0, ge=0)
    work_item_max_tier: int = Field(default=3, ge=1)
    # Logistics. The carrier of a new shipment: its warehouse's, else the default.
    logistics_default_carrier: str = Field(default="sf-express", min_length=1)
    logistics_carrier_by_warehouse: dict[str, str] = Field(default_factory=dict)
    # Carrier code -> the secret its webhook signs scans with (HMAC-SHA256); never in code.
    carrier_secrets: dict[str, SecretStr] = Field(default_factory=dict)
    # A signed webhook request whose timestamp is further than this from now is refused.
    carrier_signature_tolerance_s: float = Field(default=300.0, gt=0)
    # Delay compensation, once per shipment: what the customer gets per reason, and when.
    logistics_delay_compensation: dict[Literal["overdue", "stalled"], DelayCompensation] = Field(
        default_factory=lambda: {
            "overdue": DelayCompensation(kind="coupon", amount=Decimal("10")),
            "stalled": DelayCompensation(kind="points", amount=Decimal("100")),
        }
    )
    # Compensate an undelivered shipment this long after its promised date...
    logistics_overdue_compensation_after_s: float = Field(default=0.0, ge=0)
    # ... or an in-transit one this long after its last scan.
    logistics_stall_compensation_after_s: float = Field(default=48 * 3600.0, gt=0)
    # Notifier: where and how messages go out (shared/notifier_settings.py).
    channels: ChannelSettings = Field(default_factory=ChannelSettings)
    deliveries: DeliverySettings = Field(default_factory=DeliverySettings)
    # Order lifecycle: an order unpaid this long after placement is cancelled (payment_timeout);
    # the delivery promised when it is paid (express or standard); a delivered order completes
    # after this many days (fractions allowed).
    order_payment_deadline_s: float = Field(default=30 * 60, gt=0)
    order_delivery_promise_days: int = Field(default=3, ge=0)
    order_express_delivery_promise_days: int = Field(default=1, ge=0)
    order_complete_after_days: float = Field(default=7.0, ge=0)

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("ORDERGUARD_DATABASE_URL must be a postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _deliveries_outlive_their_dedup_window(self) -> Settings:
        if self.retention.deliveries_s < self.deliveries.dedup_window_s:
            raise ValueError(
                "ORDERGUARD_RETENTION__DELIVERIES_S must be at least the deliveries' dedup window"
                f" ({self.deliveries.dedup_window_s}s): a delivery is its own dedup record"
            )
        return self

    @cached_property
    def scope_by_key(self) -> dict[str, frozenset[str]]:
        return {key.get_secret_value(): frozenset(scopes) for key, scopes in self.api_keys.items()}
