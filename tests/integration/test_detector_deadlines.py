"""Deadlines under the real engine, broker and database: a timed rule finds a key that went
silent, once; an event re-arms it; a deadline survives a restart and a rebalance and still fires
exactly once; a late event is applied and counted."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY
from testkit import wait_until

from orderguard.shared.db import apply_migrations, create_pool
from orderguard.shared.detection.consumer import DetectorConsumer
from orderguard.shared.detection.deadlines import PartitionClocks
from orderguard.shared.detection.rule import State, fingerprint
from orderguard.shared.engine import Engine, Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.events.orders import OrderCancelled
from orderguard.shared.kafka import make_consumer
from orderguard.shared.settings import Settings

SCHEMA = "deadlinetest"
SILENCE = timedelta(seconds=2)
GROUP = "test.detector.test.silent"


class SilentKey:
    """`test.silent`: no event for a key within 2 s of its last one. Fires once per silence."""

    name = "test.silent"
    event_types = frozenset({"order.cancelled.v1"})

    def key(self, event: Event) -> str | None:
        return event.envelope.subject

    def initial_state(self) -> State:
        return {"last_seen": None, "last_event": None, "silent": False, "episode": 0}

    def apply(self, state: State, event: Event, now: datetime) -> tuple[State, list[Any]]:
        seen = event.envelope.time.isoformat()
        if state["last_seen"] is not None and state["last_seen"] > seen and not state["silent"]:
            return state, []  # an older event changes nothing
        return {**state, "last_seen": seen, "last_event": event.id, "silent": False}, []

    def deadline(self, state: State) -> datetime | None:
        if state["silent"] or state["last_seen"] is None:
            return None
        return datetime.fromisoformat(state["last_seen"]) + SILENCE

    def tick(self, state: State, key: str, now: datetime) -> tuple[State, list[AnomalyDetected]]:
        due = self.deadline(state)
        assert due is not None and due <= now, "ticked before its deadline"
        episode = state["episode"] + 1
        anomaly = AnomalyDetected(
            rule=self.name,
            fingerprint=fingerprint(self.name, {"key": key}, episode),
            severity="P3",
            team="logistics",
            labels={"key": key, "severity": "P3", "team": "logistics"},
            summary=f"{key}: no event since {state['last_seen']}",
            event_time=due,
            detected_at=now,
            source_event_id=state["last_event"],
        )
        return {**state, "silent": True, "episode": episode}, [anomaly]


def event(key: str, at: datetime | None = None) -> Envelope:
    data = OrderCancelled(
        order_id=key, reason="test", cancelled_by="test", cancelled_at=datetime.now(UTC)
    )
    return Envelope(
        type="order.cancelled.v1",
        source="/test",
        subject=key,
        time=at or datetime.now(UTC),
        data=data.model_dump(mode="json"),
    )


class Deployment:
    """The SilentKey detector's database and topic; engines come and go over them."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        self.settings = settings
        self.pool = pool
        self.topic = settings.topic_prefix + "orders.events"
        self.anomalies_topic = settings.topic_prefix + "anomalies.detected"

    @contextlib.asynccontextmanager
    async def engine(self, idle_after_s: float, lateness_s: float = 0) -> AsyncIterator[Engine]:
        handler = DetectorConsumer(
            SilentKey(),
            topics=[self.topic],
            anomalies_topic=self.anomalies_topic,
            service="test",
            clocks=PartitionClocks(timedelta(seconds=lateness_s), timedelta(seconds=idle_after_s)),
        )
        engine = Engine(
            handler.name,
            [handler],
            make_consumer(self.settings, handler.name),
            self.pool,
            SCHEMA,
            retry_backoff_s=0.01,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(engine.run(stop))
        try:
            await wait_until(
                self._assigned(engine, task), timeout=30, what="the engine owning partitions"
            )
            yield engine
        finally:
            stop.set()
            await asyncio.wait({task}, timeout=15)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @staticmethod
    def _assigned(engine: Engine, task: asyncio.Task[None]) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            if task.done():
                task.result()  # an engine that died shows its error here
            return bool(engine.assigned)

        return check

    async def publish(self, envelope: Envelope, partition: int) -> None:
        """Publish to one partition, so the test chooses which keys share a clock."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap, acks="all", enable_idempotence=False
        )
        await producer.start()
        try:
            await producer.send_and_wait(
                self.topic,
                envelope.to_json(),
                key=envelope.subject.encode(),
                partition=partition,
                headers=envelope.kafka_headers(),
            )
        finally:
            await producer.stop()

    async def anomalies(self, key: str | None = None) -> list[AnomalyDetected]:
        rows = await self.pool.fetch(
            "SELECT value FROM outbox WHERE topic = $1 ORDER BY id", self.anomalies_topic
        )
        found = [AnomalyDetected.model_validate(Envelope.from_json(r["value"]).data) for r in rows]
        return [a for a in found if key is None or a.labels["key"] == key]

    async def fired(self, key: str, times: int = 1, timeout: float = 20) -> list[AnomalyDetected]:
        async def enough() -> list[AnomalyDetected]:
            found = await self.anomalies(key)
            return found if len(found) >= times else []

        return await wait_until(enough, timeout=timeout, what=f"{times} test.silent for {key}")

    async def deadline_of(self, key: str) -> datetime | None:
        return await self.pool.fetchval(
            "SELECT due_at FROM detector_deadlines WHERE rule = 'test.silent' AND key = $1", key
        )

    async def armed(self, key: str, due_at: datetime) -> None:
        async def check() -> bool:
            return await self.deadline_of(key) == due_at

        await wait_until(check, what=f"{key}'s deadline at {due_at}")


@pytest.fixture
async def deployment(settings: Settings) -> AsyncIterator[Deployment]:
    await apply_migrations(settings.database_url, SCHEMA, None)
    pool = await create_pool(settings.database_url, SCHEMA)
    try:
        yield Deployment(settings, pool)
    finally:
        await pool.close()


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


async def test_a_silent_key_fires_once_and_a_later_event_re_arms_it(
    deployment: Deployment,
) -> None:
    async with deployment.engine(idle_after_s=0.5):
        first = event("K")
        await deployment.publish(first, partition=0)
        # Nothing else arrives: the idle partition's clock follows the wall and reaches K's deadline.
        [anomaly] = await deployment.fired("K")
        assert anomaly.rule == "test.silent"
        assert anomaly.event_time == first.time + SILENCE
        assert anomaly.detected_at >= anomaly.event_time
        assert anomaly.source_event_id == first.id
        assert await deployment.deadline_of("K") is None, "a silent key has nothing more due"
        # Still silent while another key goes silent after it: K did not fire again.
        await deployment.publish(event("S1"), partition=0)
        await deployment.fired("S1")
        assert len(await deployment.anomalies("K")) == 1

        again = event("K")
        await deployment.publish(again, partition=0)
        first_anomaly, second = await deployment.fired("K", times=2)
        assert second.event_time == again.time + SILENCE
        assert second.fingerprint != first_anomaly.fingerprint, "a new silence, a new episode"
        await deployment.publish(event("S2"), partition=0)
        await deployment.fired("S2")
        assert len(await deployment.anomalies("K")) == 2


async def test_on_event_time_an_event_pushes_the_deadline_back_and_late_events_count(
    deployment: Deployment,
) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    late_before = REGISTRY.get_sample_value("orderguard_late_events_total", {"group": GROUP}) or 0
    # Never idle in this test: only event times move the clock.
    async with deployment.engine(idle_after_s=3600):
        await deployment.publish(event("K", t0), partition=1)
        await deployment.publish(event("K", t0 + seconds(1.5)), partition=1)
        await deployment.publish(event("X", t0 + seconds(3)), partition=1)
        await deployment.armed("X", t0 + seconds(5))
        # The clock is at t0+3: K's first deadline (t0+2) would be due, its current one is not.
        assert await deployment.deadline_of("K") == t0 + seconds(3.5)
        await deployment.publish(event("X", t0 + seconds(4)), partition=1)
        [anomaly] = await deployment.fired("K")
        assert anomaly.event_time == t0 + seconds(3.5)
        assert anomaly.detected_at == t0 + seconds(4), "ticked at the partition's event-time clock"
        assert await deployment.anomalies("X") == [], "X's deadline (t0+6) is not due at t0+4"

        # Behind the clock: late, yet applied; its deadline is already past, so it fires at once.
        await deployment.publish(event("Z", t0), partition=1)
        [late] = await deployment.fired("Z")
        assert late.event_time == t0 + seconds(2)
        late_after = REGISTRY.get_sample_value("orderguard_late_events_total", {"group": GROUP})
        assert late_after == late_before + 1

        await deployment.publish(event("Y", t0 + seconds(10)), partition=1)
        await deployment.fired("X")
        assert len(await deployment.anomalies("K")) == 1


async def test_a_deadline_survives_a_restart_and_fires_exactly_once(
    deployment: Deployment,
) -> None:
    key_event = event("K")
    # This engine's clock never reaches the deadline: it stops with K armed and unfired.
    async with deployment.engine(idle_after_s=3600):
        await deployment.publish(key_event, partition=2)
        await deployment.armed("K", key_event.time + SILENCE)
    assert await deployment.anomalies() == []

    async with deployment.engine(idle_after_s=0.5):
        [anomaly] = await deployment.fired("K")
        assert anomaly.source_event_id == key_event.id
        assert await deployment.deadline_of("K") is None
        await deployment.publish(event("S"), partition=2)
        await deployment.fired("S")
    assert len(await deployment.anomalies("K")) == 1
    applied = await deployment.pool.fetchval(
        "SELECT count(*) FROM applied_events WHERE event_id = $1", key_event.id
    )
    assert applied == 1, "the new engine resumed after K's event instead of applying it again"


async def test_two_engines_sharing_the_partitions_fire_each_deadline_once(
    deployment: Deployment,
) -> None:
    keys = [f"K{partition}" for partition in range(3)]
    async with deployment.engine(idle_after_s=0.5):
        for partition, key in enumerate(keys):
            await deployment.publish(event(key), partition=partition)
        # A second worker joins: the partitions (and the clocks and deadlines on them) are shared out.
        async with deployment.engine(idle_after_s=0.5) as second:
            for key in keys:
                await deployment.fired(key)
            assert second.assigned

            async def nothing_due() -> bool:
                return not await deployment.pool.fetchval("SELECT count(*) FROM detector_deadlines")

            await wait_until(nothing_due, what="every deadline swept")
    # With no deadline left, nothing more can fire: the counts are final.
    assert sorted(a.labels["key"] for a in await deployment.anomalies()) == keys
