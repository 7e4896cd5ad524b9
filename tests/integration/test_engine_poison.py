"""The engine on the real broker and database: a handler that keeps failing on one event gets
that event dead-lettered after bounded retries, and everything around it is applied once."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from aiokafka import TopicPartition
from testkit import engine_and_relay, publish_event, read_topic, wait_until

from orderguard.shared.db import apply_migrations, create_pool
from orderguard.shared.dead_letters import redrive
from orderguard.shared.engine import Engine, Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.orders import OrderCancelled
from orderguard.shared.kafka import create_topics, make_consumer, make_producer
from orderguard.shared.settings import Settings
from orderguard.shared.topics import Topics
from orderguard.shared.uow import UnitOfWork

SCHEMA = "enginetest"


class FailsOnPoison:
    name = "test.poison"
    event_types = frozenset({"order.cancelled.v1"})

    def __init__(self, topic: str) -> None:
        self.topics = [topic]
        self.attempts_on_poison = 0
        self._healed = False

    def heal(self) -> None:
        self._healed = True

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        for event in events:
            assert isinstance(event.data, OrderCancelled)
            if event.data.reason == "poison" and not self._healed:
                self.attempts_on_poison += 1
                raise RuntimeError("cannot apply poison")
            await uow.conn.execute(
                "INSERT INTO applied (order_id) VALUES ($1)", event.data.order_id
            )

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        pass


def cancellation(order_id: str, reason: str) -> Envelope:
    data = OrderCancelled(
        order_id=order_id, reason=reason, cancelled_by="test", cancelled_at=datetime.now(UTC)
    )
    return Envelope(
        type="order.cancelled.v1",
        source="/test",
        subject=order_id,
        data=data.model_dump(mode="json"),
    )


@dataclass
class Harness:
    topic: str
    dead_letters: str
    pool: asyncpg.Pool
    handler: FailsOnPoison


@contextlib.asynccontextmanager
async def engine_with_relay(settings: Settings, max_retries: int) -> AsyncIterator[Harness]:
    """A FailsOnPoison handler under the real engine, with the outbox relay publishing its DLQ."""
    topic = settings.topic_prefix + "orders.events"
    dead_letters = Topics.dead_letter(topic, FailsOnPoison.name)
    await create_topics(settings, [dead_letters])
    await apply_migrations(settings.database_url, SCHEMA, None)
    pool = await create_pool(settings.database_url, SCHEMA)
    await pool.execute(
        "CREATE TABLE applied (order_id text PRIMARY KEY)"
    )  # a duplicate fails loudly
    producer = make_producer(settings)
    await producer.start()
    handler = FailsOnPoison(topic)
    engine = Engine(
        handler.name,
        [handler],
        make_consumer(settings, handler.name),
        pool,
        SCHEMA,
        max_retries=max_retries,
        retry_backoff_s=0.01,
    )
    async with engine_and_relay(engine, pool, producer, SCHEMA):
        yield Harness(topic, dead_letters, pool, handler)


async def test_poison_event_is_dead_lettered_after_retries_and_the_rest_applied_once(
    settings: Settings,
) -> None:
    async with engine_with_relay(settings, max_retries=2) as harness:
        # One key, so one partition and one batch: the poison sits between good events.
        for order_id, reason in [
            ("a", "ok"),
            ("b", "ok"),
            ("p", "poison"),
            ("c", "ok"),
            ("d", "ok"),
        ]:
            await publish_event(
                settings, harness.topic, cancellation(order_id, reason), key="same-key"
            )

        dead = await wait_until(
            lambda: read_topic(settings, harness.dead_letters),
            timeout=30,
            what="the poison event in the dead-letter topic",
        )
        applied = await wait_until(
            lambda: harness.pool.fetch("SELECT order_id FROM applied ORDER BY order_id"),
            what="good events applied",
        )
        assert [row["order_id"] for row in applied] == ["a", "b", "c", "d"]
        assert len(dead) == 1
        letter = dead[0]
        assert letter.envelope.data["order_id"] == "p"
        assert letter.headers["dlq_reason"] == b"failed"
        assert b"cannot apply poison" in letter.headers["dlq_error"]
        assert letter.headers["ce_type"] == b"order.cancelled.v1"  # original headers kept
        # Bounded: the batch was tried 1 + 2 times, then the poison alone 1 + 2 times.
        assert harness.handler.attempts_on_poison == 6
        offsets = await harness.pool.fetch(
            "SELECT next_offset FROM consumer_offsets WHERE group_id = $1", FailsOnPoison.name
        )
        assert sum(row["next_offset"] for row in offsets) == 5


async def test_redriven_dead_letter_is_applied_once_the_cause_is_fixed(settings: Settings) -> None:
    async with engine_with_relay(settings, max_retries=0) as harness:
        await publish_event(settings, harness.topic, cancellation("p", "poison"))
        await wait_until(lambda: read_topic(settings, harness.dead_letters), what="the dead letter")
        harness.handler.heal()
        assert await redrive(settings, harness.dead_letters) == 1
        applied = await wait_until(
            lambda: harness.pool.fetch("SELECT order_id FROM applied"),
            what="the re-driven event applied",
        )
        assert [row["order_id"] for row in applied] == ["p"]
        assert await redrive(settings, harness.dead_letters) == 0, (
            "a second run re-drives nothing new"
        )


class RecordsFirst:
    """A handler before the failing one in the same group: its writes for the poison's batch
    roll back with the batch."""

    name = "test.first"
    event_types = frozenset({"order.cancelled.v1"})

    def __init__(self, topic: str) -> None:
        self.topics = [topic]

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        for event in events:
            assert isinstance(event.data, OrderCancelled)
            await uow.conn.execute(
                "INSERT INTO first_applied (order_id) VALUES ($1)", event.data.order_id
            )

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        pass


async def test_a_record_one_handler_fails_on_is_dead_lettered_for_the_group_and_redriven_to_every_handler(
    settings: Settings,
) -> None:
    group = "test.worker"
    topic = settings.topic_prefix + "orders.events"
    dead_letters = Topics.dead_letter(topic, group)
    await create_topics(settings, [dead_letters])
    await apply_migrations(settings.database_url, SCHEMA, None)
    pool = await create_pool(settings.database_url, SCHEMA)
    await pool.execute("CREATE TABLE applied (order_id text PRIMARY KEY)")
    await pool.execute("CREATE TABLE first_applied (order_id text PRIMARY KEY)")
    producer = make_producer(settings)
    await producer.start()
    first, failing = RecordsFirst(topic), FailsOnPoison(topic)
    engine = Engine(
        group,
        [first, failing],
        make_consumer(settings, group),
        pool,
        SCHEMA,
        max_retries=1,
        retry_backoff_s=0.01,
    )

    async def applied_by(table: str) -> list[str]:
        return [r["order_id"] for r in await pool.fetch(f"SELECT order_id FROM {table} ORDER BY 1")]

    async with engine_and_relay(engine, pool, producer, SCHEMA):
        poison = cancellation("p", "poison")
        for envelope in (cancellation("a", "ok"), poison, cancellation("b", "ok")):
            await publish_event(settings, topic, envelope, key="same-key")
        [letter] = await wait_until(
            lambda: read_topic(settings, dead_letters), timeout=30, what="the dead letter"
        )
        assert letter.envelope.id == poison.id
        assert letter.headers["dlq_group"] == group.encode()
        assert letter.headers["dlq_error"].startswith(b"handler test.poison failed: RuntimeError")
        assert await wait_until(lambda: applied_by("applied"), what="a and b") == ["a", "b"]
        # The first handler's write for the poison rolled back; the group did not record it.
        assert await applied_by("first_applied") == ["a", "b"]
        assert not await pool.fetchval(
            "SELECT count(*) FROM applied_events WHERE group_id = $1 AND event_id = $2",
            group,
            poison.id,
        )

        failing.heal()
        assert await redrive(settings, dead_letters) == 1

        async def both_applied_it() -> bool:
            return "p" in await applied_by("applied") and "p" in await applied_by("first_applied")

        await wait_until(both_applied_it, what="the re-driven event applied by both handlers")
        assert await applied_by("first_applied") == ["a", "b", "p"]
        assert await applied_by("applied") == ["a", "b", "p"]
