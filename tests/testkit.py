"""Helpers for integration and end-to-end tests: waiting on conditions and reading topics."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from orderguard.shared.db import apply_migrations, create_pool
from orderguard.shared.engine import Engine, Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected, AnomalyRouted
from orderguard.shared.events.inventory import StockChanged
from orderguard.shared.events.orders import OrderCancelled, OrderLine, OrderPlaced, ShippingAddress
from orderguard.shared.outbox import OutboxMessage, OutboxRelay
from orderguard.shared.runtime import Runtime, build_app
from orderguard.shared.settings import Settings
from orderguard.shared.uow import UnitOfWork

T = TypeVar("T")
S = TypeVar("S", bound=Settings)


@contextlib.asynccontextmanager
async def engine_pool(settings: Settings, schema: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on `schema`, with the engine's tables (outbox, offsets, applied ids) in it."""
    await apply_migrations(settings.database_url, schema, None)
    pool = await create_pool(settings.database_url, schema)
    try:
        yield pool
    finally:
        await pool.close()


def tuned(settings: S, **changes: Any) -> S:
    """`settings` with `changes`; a service's section takes a dict of its own changes, e.g.
    `tuned(settings, job_interval_s=0.1, order={"recycle_bin_retention_s": 0.01})`."""
    sections = settings.sections()
    # model_copy takes any name silently: a renamed setting must fail here, not be ignored.
    unknown = set(changes) - set(type(settings).model_fields)
    assert not unknown, f"no such settings: {sorted(unknown)}"
    for name, value in changes.items():
        if name in sections and isinstance(value, dict):
            section_unknown = set(value) - set(type(sections[name]).model_fields)
            assert not section_unknown, f"no such {name} settings: {sorted(section_unknown)}"
    return settings.model_copy(
        update={
            name: sections[name].model_copy(update=value)
            if name in sections and isinstance(value, dict)
            else value
            for name, value in changes.items()
        }
    )


async def wait_until(
    check: Callable[[], Awaitable[T]],
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


async def at_once(value: T) -> T:
    """`value` as something to await: `wait_until(lambda: at_once(engine.idle))`."""
    return value


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]

    @property
    def envelope(self) -> Envelope:
        return Envelope.from_json(self.value)


async def read_topic(settings: Settings, topic: str) -> list[Record]:
    """Every record on `topic` right now, read without a consumer group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())
        ]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())
            ]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Record] = []
        # Read until every partition reports no more data (its position reached the high watermark).
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp_records in batch.values():
                records += [
                    Record(
                        r.topic, r.partition, r.offset, r.key, r.value or b"", dict(r.headers or ())
                    )
                    for r in tp_records
                ]
            if not batch and await _caught_up(consumer, partitions):
                return records
    finally:
        await consumer.stop()


async def _caught_up(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> bool:
    for tp in partitions:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True


async def events_of_type(settings: Settings, topic: str, event_type: str) -> list[Envelope]:
    return [
        r.envelope
        for r in await read_topic(settings, topic)
        if r.headers.get("ce_type") == event_type.encode()
    ]


async def publish(
    settings: Settings,
    topic: str,
    value: bytes,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
    max_request_size: int = 1024 * 1024,
    partition: int | None = None,
) -> None:
    """Publish like an outside producer would (on `partition`, else where the key goes)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=False,
        max_request_size=max_request_size,
    )
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, value, key=key, headers=headers or [], partition=partition
        )
    finally:
        await producer.stop()


async def publish_event(
    settings: Settings,
    topic: str,
    envelope: Envelope,
    key: str | None = None,
    partition: int | None = None,
) -> None:
    await publish(
        settings,
        topic,
        envelope.to_json(),
        (key or envelope.subject).encode(),
        envelope.kafka_headers(),
        partition=partition,
    )


async def publish_batch(settings: Settings, topic: str, envelopes: list[Envelope]) -> None:
    """Publish `envelopes` as one record batch on one partition: a consumer fetches them
    together and applies them in one transaction (one moment), however loaded the machine."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=False
    )
    await producer.start()
    try:
        batch = producer.create_batch()
        for envelope in envelopes:
            metadata = batch.append(
                key=envelope.subject.encode(),
                value=envelope.to_json(),
                timestamp=None,
                headers=envelope.kafka_headers(),
            )
            assert metadata is not None, "the batch is full"
        await (await producer.send_batch(batch, topic, partition=0))
    finally:
        await producer.stop()


@dataclass
class RunningService:
    runtime: Runtime
    client: httpx.AsyncClient

    async def wait_assigned(self, timeout: float = 20.0) -> None:
        """Wait until every consumer of the service owns its partitions."""

        async def all_assigned() -> bool:
            return all(engine.assigned for engine in self.runtime.engines)

        await wait_until(
            all_assigned, timeout, what=f"{self.runtime.definition.name} consumers assigned"
        )

    async def caught_up(self, topic: str, timeout: float = 30.0) -> None:
        """Wait until the service's worker has applied every record now on `topic`, whichever
        partition each went to: the offsets it stores with its effects reached every end."""
        group = self.runtime.worker_group
        end: dict[int, int] = {}
        for record in await read_topic(self.runtime.settings, topic):
            end[record.partition] = max(end.get(record.partition, 0), record.offset + 1)

        async def applied_all() -> bool:
            rows = await self.runtime.pool.fetch(
                "SELECT partition, next_offset FROM consumer_offsets"
                " WHERE group_id = $1 AND topic = $2",
                group,
                topic,
            )
            stored = {row["partition"]: row["next_offset"] for row in rows}
            return all(stored.get(partition, 0) >= n for partition, n in end.items())

        await wait_until(applied_all, timeout, what=f"{group} caught up on {topic}")

    async def consumed_on(self, *topics: str) -> int:
        """Records the service's worker has applied (or skipped) and committed on `topics`, over
        all their partitions: with fresh topics per test, how many it consumed there."""
        return int(
            await self.runtime.pool.fetchval(
                "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets"
                " WHERE group_id = $1 AND topic = ANY($2::text[])",
                self.runtime.worker_group,
                list(topics),
            )
        )

    async def outbox_sent(self, timeout: float = 15.0) -> None:
        """Wait until the relay has published every outbox row the service has written."""

        async def drained() -> bool:
            unsent = await self.runtime.pool.fetchval(
                "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
            )
            return unsent == 0

        await wait_until(drained, timeout, what=f"{self.runtime.definition.name} outbox published")

    async def stop(self) -> None:
        await self.client.aclose()
        await self.runtime.stop()


# Events as the order service would publish them, for tests of its consumers.


def outbox_message(topic: str, subject: str, event_type: str = "order.placed.v1") -> OutboxMessage:
    """An outbox row of an event with no data (what a relay test publishes)."""
    envelope = Envelope(type=event_type, source="/test", subject=subject, data={})
    return OutboxMessage.of(topic, envelope)


def placed(order_id: str, sku: str, quantity: int) -> Envelope:
    data = OrderPlaced(
        order_id=order_id,
        customer_id="c-1",
        channel="web",
        warehouse="main",
        lines=[OrderLine(sku=sku, quantity=quantity, unit_price=Decimal("9.90"))],
        total_amount=Decimal("9.90") * quantity,
        phone="13800138000",
        shipping_address=ShippingAddress(
            province="Zhejiang",
            city="Hangzhou",
            district="Xihu",
            street="1 Wensan Rd",
            recipient="Li Lei",
        ),
        placed_at=datetime.now(UTC),
    )
    return Envelope(
        type="order.placed.v1", source="/test", subject=order_id, data=data.model_dump(mode="json")
    )


def cancelled(order_id: str) -> Envelope:
    data = OrderCancelled(
        order_id=order_id,
        reason="changed mind",
        cancelled_by="customer",
        cancelled_at=datetime.now(UTC),
    )
    return Envelope(
        type="order.cancelled.v1",
        source="/test",
        subject=order_id,
        data=data.model_dump(mode="json"),
    )


# A valid POST /orders body.
ORDER_BODY = {
    "customer_id": "c-42",
    "phone": "13800138000",
    "channel": "web",
    "shipping_address": {
        "province": "Zhejiang",
        "city": "Hangzhou",
        "district": "Xihu",
        "street": "1 Wensan Rd",
        "recipient": "Li Lei",
    },
    "lines": [{"sku": "SKU-E2E", "quantity": 3, "unit_price": "19.90"}],
}


T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def stock_event(
    available: int,
    threshold: int | None = 5,
    sku: str = "SKU-1",
    warehouse: str = "main",
    n: int = 0,
    at: datetime = T0,
) -> Event:
    """The n-th stock change of a SKU, as the inventory service publishes it, `n` seconds after `at`."""
    data = StockChanged(
        sku=sku,
        warehouse=warehouse,
        on_hand=available,
        reserved=0,
        available=available,
        low_stock_threshold=threshold,
        cause="reserved",
    )
    envelope = Envelope(
        id=f"e-{sku}-{n}",
        type="inventory.stock_changed.v1",
        source="/test",
        subject=sku,
        time=at + timedelta(seconds=n),
        data=data.model_dump(mode="json"),
    )
    return Event(envelope, data, "inventory.events", 0, n)


@contextlib.asynccontextmanager
async def engine_and_relay(
    engine: Engine, pool: asyncpg.Pool, producer: AIOKafkaProducer, schema: str
) -> AsyncIterator[None]:
    """Runs an engine and the outbox relay of its schema for the block; then stops both and
    closes the producer and the pool."""
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(engine.run(stop)),
        asyncio.create_task(OutboxRelay(pool, producer, schema, poll_interval_s=0.2).run(stop)),
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait(tasks, timeout=15)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await producer.stop()
        await pool.close()


# -- the console (tests/e2e/test_console*.py) -----------------------------------------------

CONSOLE_PASSWORD = "correct horse battery"


async def route_anomaly(
    settings: Settings,
    fingerprint: str,
    rule: str,
    team: str,
    severity: str = "P3",
    labels: dict[str, str] | None = None,
) -> None:
    """An anomaly routed to `team`'s queue, as the router publishes it (a work item follows)."""
    now = datetime.now(UTC)
    detected = AnomalyDetected(
        rule=rule,
        fingerprint=fingerprint,
        status="firing",
        severity=severity,  # type: ignore[arg-type]
        team=team,  # type: ignore[arg-type]
        labels={"sku": "S-1", "order_id": "o-1"} if labels is None else labels,
        summary=f"{rule} on {fingerprint}",
        event_time=now,
        detected_at=now,
        source_event_id="e-1",
    )
    routed = AnomalyRouted(
        anomaly=detected, route=team, queue=team, channels=["in_app"], routed_at=now
    )
    envelope = Envelope(
        type="anomaly.routed.v1",
        source="/orderguard/notifier/router",
        subject=fingerprint,
        data=routed.model_dump(mode="json"),
    )
    await publish_event(settings, f"{settings.topic_prefix}queues.{team}", envelope)


async def work_items_of(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """The notifier's work items (GET /work-items) matching `params`."""
    response = await client.get("/work-items", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def add_people(runtime: Runtime, *people_: tuple[str, str, dict[str, str]]) -> None:
    """(login, display name, {team: role}) each, with CONSOLE_PASSWORD."""
    from orderguard.services.notifier.console import people

    async with runtime.pool.acquire() as conn:
        for login, name, teams in people_:
            await people.add(conn, login, name, CONSOLE_PASSWORD, teams=teams)  # type: ignore[arg-type]


def console_browser(service: RunningService) -> httpx.AsyncClient:
    """A client of the console in-process, like a browser (cookies kept)."""
    # https: the session cookie is Secure (and __Host-), so a client sends it over https only.
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_app(service.runtime)),
        base_url="https://console.test",
    )


def csrf_in(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def console_sign_in(
    client: httpx.AsyncClient, login: str, password: str = CONSOLE_PASSWORD
) -> str:
    """Signs in; returns the session's CSRF token (from the queue page)."""
    form = await client.get("/console/sign-in")
    signed = await client.post(
        "/console/sign-in",
        data={"csrf_token": csrf_in(form.text), "login": login, "password": password},
    )
    assert signed.status_code == 303, signed.text
    queue = await client.get("/console/")
    assert queue.status_code == 200, queue.text
    return csrf_in(queue.text)


def console_calls_in_process(console: RunningService, other: RunningService) -> None:
    """The console reaches `other` (order, aftersales, logistics) in-process with the key of
    `other`'s test client; `up` gives it their URLs."""
    from orderguard.services.notifier.console.service_client import ServiceClient, client_slot

    name = other.runtime.definition.name
    console.runtime.once(
        client_slot(name),  # type: ignore[arg-type]
        lambda: ServiceClient(
            name,  # type: ignore[arg-type]
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=build_app(other.runtime)),
                base_url=f"http://{name}",
                headers={"X-API-Key": other.client.headers["X-API-Key"]},
            ),
        ),
    )


@contextlib.asynccontextmanager
async def served(runtime: Runtime) -> AsyncIterator[str]:
    """The runtime's app on a real port on this event loop (for streams and browsers, which an
    in-process transport cannot serve); yields its base URL."""
    import uvicorn

    from orderguard.cli.embedded import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(build_app(runtime), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return bool(server.started)

    await wait_until(started, 20, what="uvicorn started")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


class CountingConnection:
    """A connection that counts the statements sent through it (a batch's cost in round trips)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.statements = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.conn, name)
        if name not in ("fetch", "fetchrow", "fetchval", "execute", "executemany"):
            return method

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.statements += 1
            return await method(*args, **kwargs)

        return counted


class CountsCancellations:
    """An engine handler that appends one row per application to `cancellations`: a doubled
    effect shows as two rows, the order of the rows is the order applied."""

    event_types = frozenset({"order.cancelled.v1"})

    def __init__(self, name: str, topic: str) -> None:
        self.name = name
        self.topics = [topic]

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        await uow.conn.executemany(
            "INSERT INTO cancellations (order_id) VALUES ($1)",
            [(event.data.order_id,) for event in events],  # type: ignore[attr-defined]
        )

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        pass
