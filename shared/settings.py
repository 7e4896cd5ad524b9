"""The settings every process shares (ORDERGUARD_*), and the base of each service's own section.

A service's own settings live with it, in `services/<name>/settings.py`, as a `ServiceSettings`
section; the composition root (`cli/services_registry.py`) adds one field per service to
`Settings`, so they read ORDERGUARD_<SERVICE>__<FIELD> (e.g. ORDERGUARD_ORDER__PAYMENT_DEADLINE_S).
`docs/settings.md` lists every one (`orderguard settings table`).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
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


class ServiceSettings(BaseModel):
    """A service's own section of the settings (ORDERGUARD_<SERVICE>__*)."""

    model_config = ConfigDict(extra="forbid")

    def detector_defaults(self) -> dict[str, dict[str, Any]]:
        """Built-in params of this service's rules set by a setting (the detectors file wins)."""
        return {}

    def upload_max_bytes(self) -> int:
        """The largest request body of another type than JSON its API takes (0: JSON only)."""
        return 0


S = TypeVar("S", bound=ServiceSettings)


class RetentionSettings(BaseModel):
    """How long rows every service keeps are kept (docs/operations.md lists every table)."""

    model_config = ConfigDict(extra="forbid")

    idempotency_keys_s: float = Field(
        default=24 * 3600,
        gt=0,
        description="A retried HTTP write within this window gets the first answer again",
    )
    interval_s: float = Field(default=300.0, gt=0, description="How often each retention job looks")
    batch_max: int = Field(
        default=1000, ge=1, description="Rows one retention transaction deletes at most"
    )


class Settings(BaseSettings):
    """What every orderguard process reads; the services' sections are added by the root."""

    # Nested sections read ORDERGUARD_<SECTION>__<FIELD>, e.g. ORDERGUARD_RETENTION__INTERVAL_S.
    model_config = SettingsConfigDict(
        env_prefix="ORDERGUARD_", env_nested_delimiter="__", extra="ignore"
    )

    database_url: str = Field(
        default="postgresql://postgres@localhost:5432/orderguard",
        description="PostgreSQL the services keep their schemas in (a postgresql:// URL)",
    )
    kafka_bootstrap: str = Field(default="localhost:9092", description="Kafka bootstrap servers")
    kafka_embedded_compat: bool = Field(
        default=False,
        description="True on the embedded Tansu broker: it rejects InitProducerId,"
        " so no idempotent producer",
    )
    topic_prefix: str = Field(
        default="",
        description="Prefixed to every topic, so deployments (or test runs) can share a cluster",
    )
    # 3 where a deployment does not say (compose and Kubernetes set 6): a few workers can share a
    # topic, and every fetch and probe costs the broker and aiokafka something per partition asked
    # for (an engine asks for every partition of its topics). `orderguard up` creates its topics
    # on the embedded broker with 1 (cli/supervisor.py, EMBEDDED_TOPIC_PARTITIONS), the tests
    # with 3 (tests/conftest.py); docs/performance.md has 12 (session 8), 3 (18) and 1 (19)
    # measured there.
    topic_partitions: int = Field(
        default=3,
        ge=1,
        description="Partitions of topics it creates (only when it creates them);"
        " `orderguard up` creates its topics with 1 unless this is set",
    )
    topic_replication_factor: int = Field(
        default=1, ge=1, description="Replication factor of topics it creates"
    )

    http_host: str = Field(default="0.0.0.0", description="Address the HTTP server binds")
    http_port: int = Field(default=8000, ge=0, le=65535, description="Port the HTTP server binds")
    http_max_in_flight: int = Field(
        default=32,
        ge=0,
        description="API requests handled at once per process; more wait their turn before"
        " their body is parsed (bounds memory under overload); 0: no limit",
    )

    api_keys: dict[SecretStr, list[str]] = Field(
        default_factory=dict,
        description='API key -> scopes (JSON, e.g. {"k1": ["orders:write"]}); "*" grants every'
        " scope",
    )

    log_level: str = Field(default="INFO", description="Level of the structured logs")
    log_format: Literal["json", "console"] = Field(
        default="json", description="json (one object a line) or console (for people)"
    )

    # Engine tuning (batch size and fetch wait bound both throughput and latency).
    consumer_batch_max: int = Field(
        default=2000, ge=1, description="Records an engine applies in one batch at most"
    )
    consumer_fetch_max_wait_ms: int = Field(
        default=10,
        ge=0,
        description="How long a fetch waits for records (Tansu's fetch does not wake on new"
        " data: latency follows this wait); while records wait for an engine, 1 s (or this,"
        " if longer), so that Tansu can list a long partition",
    )
    consumer_flowing_fetch_every_ms: int = Field(
        default=20,
        ge=0,
        description="An engine that has read every partition to its end rests until a relay"
        " announces a topic it reads; while records flow it still looks (fetches) this often"
        " for publishers outside orderguard, less often while its looks find nothing"
        " (0: fetch continuously while records flow, rest only once idle)",
    )
    consumer_linger_ms: int = Field(
        default=50,
        ge=0,
        description="An engine woken by a relay fetches at most this often: what is announced"
        " sooner waits for the next fetch and is applied with it, in one batch, instead of in"
        " many small ones (each a fetch and a transaction); an engine that fetched longer ago"
        " fetches at once (0: always at once)",
    )
    consumer_idle_after_s: float = Field(
        default=1.0,
        ge=0,
        description="An engine without records this long pauses fetching until a relay"
        " announces a topic it reads (0: never pause)",
    )
    # Each probe costs the broker and the process a fetch: at 0.1 s an idle `up` spends about
    # 0.03 cores more than at 0.25 s (0.08 in all), and the first records of a publisher outside
    # orderguard after a quiet spell wait at most 0.1 s (docs/performance.md, session 20).
    consumer_idle_probe_s: float = Field(
        default=0.1,
        gt=0,
        description="How often a paused engine still probes, for publishers outside orderguard",
    )
    consumer_session_timeout_ms: int = Field(
        default=6000, ge=1000, description="Kafka consumer group session timeout"
    )
    consumer_heartbeat_interval_ms: int = Field(
        default=1000, ge=100, description="Kafka consumer group heartbeat interval"
    )
    consumer_max_retries: int = Field(
        default=3, ge=0, description="Retries of a failing record before it is dead-lettered"
    )
    consumer_retry_backoff_s: float = Field(
        default=0.2, ge=0, description="Wait before the first retry of a failing record"
    )
    outbox_batch_max: int = Field(
        default=2000, ge=1, description="Outbox rows the relay publishes in one batch at most"
    )
    outbox_poll_interval_s: float = Field(
        default=1.0, gt=0, description="How often the relay looks for rows nobody announced"
    )
    outbox_linger_ms: int = Field(
        default=2,
        ge=0,
        description="How long the relay's Kafka producer waits to fill a batch (its linger_ms)",
    )
    outbox_relay_linger_ms: int = Field(
        default=20,
        ge=0,
        description="The relay publishes at most this often: rows committed sooner wait for the"
        " next publish and go out with it, instead of one produce request per commit; after a"
        " quiet spell the first row goes at once (0: always at once)",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP collector spans are exported to (e.g. http://otel-collector:4318);"
        " unset: none",
    )
    job_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="How often scheduled jobs (timeouts, auto-releases, escalations) look for"
        " due work",
    )
    dedup_retention_s: float = Field(
        default=7 * 24 * 3600,
        gt=0,
        description="Applied event ids are kept this long: an older duplicate is applied again",
    )
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings, description="Retention of rows every service keeps"
    )

    detectors_file: str | None = Field(
        default=None,
        description="Detector params and their overrides per label (YAML); unset: built in",
    )
    detector_allowed_lateness_s: float = Field(
        default=30.0,
        ge=0,
        description="An event this far behind its partition's latest is still on time;"
        " deadlines fire this much after they are due",
    )
    detector_idle_after_s: float = Field(
        default=10.0,
        gt=0,
        description="A partition without records this long, and none waiting, follows the"
        " wall clock, so silence is detected",
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("ORDERGUARD_DATABASE_URL must be a postgresql:// URL")
        return value

    @cached_property
    def scope_by_key(self) -> dict[str, frozenset[str]]:
        return {key.get_secret_value(): frozenset(scopes) for key, scopes in self.api_keys.items()}

    def sections(self) -> dict[str, ServiceSettings]:
        """Each service's own section by service name (none in the common settings alone)."""
        found = {name: getattr(self, name) for name in type(self).model_fields}
        return {name: s for name, s in found.items() if isinstance(s, ServiceSettings)}

    def section(self, model: type[S]) -> S:
        """A service's own section, e.g. `settings.section(OrderSettings)`."""
        for section in self.sections().values():
            if type(section) is model:
                return section
        raise LookupError(
            f"{type(self).__name__} has no {model.__name__} section: build the settings with"
            " orderguard.cli.services_registry.OrderguardSettings"
        )

    def detector_defaults(self) -> dict[str, dict[str, Any]]:
        """Built-in params of rules set by the services' settings (the detectors file wins)."""
        return {
            rule: params
            for section in self.sections().values()
            for rule, params in section.detector_defaults().items()
        }

    def upload_max_bytes(self, service: str) -> int:
        """The largest non-JSON request body the service's API takes (0: JSON only)."""
        section = self.sections().get(service)
        return 0 if section is None else section.upload_max_bytes()
