"""Session fixtures: ONE real embedded broker and ONE real PostgreSQL for the whole run.

Each test gets its own database and its own topic prefix on them, so tests never see
each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from testkit import RunningService

from orderguard.cli.embedded import EmbeddedBroker, EmbeddedPostgres, reserve_port
from orderguard.cli.services_registry import OrderguardSettings, rule_catalogue
from orderguard.shared.kafka import create_topics
from orderguard.shared.logging import configure_logging
from orderguard.shared.runtime import Role, Runtime, ServiceDefinition, build_app
from orderguard.shared.settings import Settings

TEST_API_KEY = "test-key"


@dataclass
class Embedded:
    broker: EmbeddedBroker
    postgres: EmbeddedPostgres


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    configure_logging("INFO", "console")
    root = tmp_path_factory.mktemp("embedded")
    port = reserve_port()
    broker = EmbeddedBroker(port.getsockname()[1], log_file=root / "tansu.log")
    postgres = EmbeddedPostgres(root / "pgdata")
    broker.start()
    postgres.start()
    try:
        yield Embedded(broker, postgres)
    finally:
        broker.stop()
        postgres.stop()
        port.close()


@pytest.fixture
async def settings(embedded: Embedded) -> Settings:
    """Settings of a fresh deployment: its own database and topics on the shared broker."""
    run = uuid.uuid4().hex[:10]
    settings = OrderguardSettings(
        database_url=embedded.postgres.ensure_database(f"t_{run}"),
        kafka_bootstrap=embedded.broker.bootstrap,
        kafka_embedded_compat=True,
        topic_prefix=f"t{run}.",
        topic_partitions=3,
        api_keys={TEST_API_KEY: ["*"]},  # type: ignore[dict-item]
        log_format="console",
        consumer_retry_backoff_s=0.01,
        outbox_poll_interval_s=0.5,
    )
    await create_topics(settings)
    return settings


StartService = Callable[..., Awaitable[RunningService]]


@pytest.fixture
async def start_service(settings: Settings) -> AsyncIterator[StartService]:
    """`await start_service(DEFINITION)` runs a service in-process against the real broker and DB."""
    running: list[RunningService] = []

    async def start(
        definition: ServiceDefinition,
        roles: frozenset[Role] = frozenset({"api", "workers"}),
        settings_: Settings | None = None,
    ) -> RunningService:
        runtime = Runtime(definition, settings_ or settings, roles, rule_catalogue())
        await runtime.start()
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=build_app(runtime)),
            base_url=f"http://{definition.name}",
            headers={"X-API-Key": TEST_API_KEY},
        )
        service = RunningService(runtime, client)
        running.append(service)
        return service

    yield start
    for service in reversed(running):
        await service.stop()
