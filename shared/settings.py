"""The one settings object. Every value comes from ORDERGUARD_* environment variables."""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERGUARD_", extra="ignore")

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
    consumer_session_timeout_ms: int = Field(default=6000, ge=1000)
    consumer_heartbeat_interval_ms: int = Field(default=500, ge=100)
    consumer_max_retries: int = Field(default=3, ge=0)
    consumer_retry_backoff_s: float = Field(default=0.2, ge=0)
    outbox_batch_max: int = Field(default=2000, ge=1)
    outbox_poll_interval_s: float = Field(default=1.0, gt=0)
    outbox_linger_ms: int = Field(default=2, ge=0)
    # Applied event ids are kept this long: a producer's duplicate older than that is applied again.
    # How often scheduled jobs (timeouts, auto-releases, escalations) look for due work.
    job_interval_s: float = Field(default=5.0, gt=0)
    dedup_retention_s: float = Field(default=7 * 24 * 3600, gt=0)

    routing_file: str | None = None
    # How often the routing file's modification time is checked for a hot reload (0: never).
    routing_reload_interval_s: float = Field(default=5.0, ge=0)
    # Detector params and their overrides per label (shared/detector_config.py); None: built in.
    detectors_file: str | None = None
    # The built-in default of stock.low's `threshold` (the detectors file and a SKU's own win).
    default_low_stock_threshold: int = Field(default=10, ge=0)
    # Detector clocks (event time): an event this far behind its partition's latest is still on
    # time; deadlines fire this much after they are due.
    detector_allowed_lateness_s: float = Field(default=30.0, ge=0)
    # A partition without records for this long follows the wall clock, so silence is detected.
    detector_idle_after_s: float = Field(default=10.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("ORDERGUARD_DATABASE_URL must be a postgresql:// URL")
        return value

    @cached_property
    def scope_by_key(self) -> dict[str, frozenset[str]]:
        return {key.get_secret_value(): frozenset(scopes) for key, scopes in self.api_keys.items()}
