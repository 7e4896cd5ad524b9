"""Upgrading from one consumer group per handler to one group per worker loses nothing and
applies nothing twice: on the real broker and database, a group that finds its handlers'
former groups' offsets starts at the lowest of them, gives each handler only the events above
its own former offset, exactly once, drops producer duplicates the former groups applied, and
removes the former offsets once it has passed them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
from aiokafka import TopicPartition
from testkit import at_once, publish_event, wait_until

from orderguard.shared import metrics
from orderguard.shared.db import apply_migrations, create_pool
from orderguard.shared.engine import Engine, Event
from orderguard.shared.engine.takeover import GroupMembers, QuietOffsets
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.orders import OrderCancelled
from orderguard.shared.kafka import make_consumer, make_producer
from orderguard.shared.settings import Settings
from orderguard.shared.uow import UnitOfWork

SCHEMA = "takeovertest"
GROUP = "test.worker"


class RecordsCancellations:
    """A handler that writes every event it is handed, in order, to `handed`."""

    event_types = frozenset({"order.cancelled.v1"})

    def __init__(self, name: str, topic: str) -> None:
        self.name = name
        self.topics = [topic]

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        await uow.conn.executemany(
            "INSERT INTO handed (handler, order_id) VALUES ($1, $2)",
            [(self.name, event.envelope.subject) for event in events],
        )

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        pass


def cancellation(label: str) -> Envelope:
    data = OrderCancelled(
        order_id=label, reason="test", cancelled_by="test", cancelled_at=datetime.now(UTC)
    )
    return Envelope(
        id=f"ev-{label}",
        type="order.cancelled.v1",
        source="/test",
        subject=label,
        data=data.model_dump(mode="json"),
    )


async def publish(
    settings: Settings, topic: str, partition: int, envelopes: list[Envelope]
) -> None:
    for envelope in envelopes:  # one after another: their order on the partition is the test's
        await publish_event(settings, topic, envelope, partition=partition)


@contextlib.asynccontextmanager
async def running(engine: Engine) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait({task}, timeout=15)
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


async def handed(pool: asyncpg.Pool, handler: str) -> list[str]:
    rows = await pool.fetch("SELECT order_id FROM handed WHERE handler = $1 ORDER BY id", handler)
    return [row["order_id"] for row in rows]


async def test_a_group_takes_over_its_handlers_former_groups_exactly_once(
    settings: Settings,
) -> None:
    topic = settings.topic_prefix + "orders.events"
    await apply_migrations(settings.database_url, SCHEMA, None)
    pool = await create_pool(settings.database_url, SCHEMA)
    await pool.execute("CREATE TABLE handed (id serial PRIMARY KEY, handler text, order_id text)")
    # Partition 0: ten events, then a producer's copy of p0-1 (applied by both former groups)
    # and of p0-4 (applied by test.a only before the upgrade, by test.b after it).
    p0 = [cancellation(f"p0-{n}") for n in range(10)]
    await publish(settings, topic, 0, [*p0, p0[1], p0[4]])
    # Partition 1: eight events; test.b never stored an offset there.
    p1 = [cancellation(f"p1-{n}") for n in range(8)]
    await publish(settings, topic, 1, p1)
    # What the two former groups (one per handler, named after it) had done.
    await pool.executemany(
        "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset) VALUES ($1, $2, $3, $4)",
        [("test.a", topic, 0, 6), ("test.b", topic, 0, 3), ("test.a", topic, 1, 4)],
    )
    await pool.executemany(
        "INSERT INTO applied_events (group_id, event_id) VALUES ($1, $2)",
        [("test.a", e.id) for e in [*p0[:6], *p1[:4]]] + [("test.b", e.id) for e in p0[:3]],
    )

    a, b = RecordsCancellations("test.a", topic), RecordsCancellations("test.b", topic)
    engine = Engine(GROUP, [a, b], make_consumer(settings, GROUP), pool, SCHEMA)
    counters = {h: metrics.HANDLER_EVENTS_APPLIED.labels(GROUP, h) for h in ("test.a", "test.b")}
    before = {h: counter._value.get() for h, counter in counters.items()}

    async def caught_up() -> bool:
        rows = await pool.fetch(
            "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1", GROUP
        )
        return {row["partition"]: row["next_offset"] for row in rows} == {0: 12, 1: 8}

    try:
        async with running(engine):
            await wait_until(caught_up, timeout=30, what="the group past every record")
            # Each handler exactly the events above its own former offset, in partition order;
            # the copies at offsets 10 and 11 were dropped for both.
            labels_a = await handed(pool, "test.a")
            labels_b = await handed(pool, "test.b")
            assert sorted(labels_a) == sorted(
                [f"p0-{n}" for n in range(6, 10)] + [f"p1-{n}" for n in range(4, 8)]
            )
            assert sorted(labels_b) == sorted(
                [f"p0-{n}" for n in range(3, 10)] + [f"p1-{n}" for n in range(8)]
            )
            handed_counts = {h: c._value.get() - before[h] for h, c in counters.items()}
            assert handed_counts == {"test.a": len(labels_a), "test.b": len(labels_b)}
            for labels in (labels_a, labels_b):
                for partition in ("p0-", "p1-"):
                    mine = [label for label in labels if label.startswith(partition)]
                    assert mine == sorted(mine, key=lambda label: int(label[3:]))
            # Passed: the former groups' offsets are gone.
            former = await pool.fetchval(
                "SELECT count(*) FROM consumer_offsets WHERE group_id <> $1", GROUP
            )
            assert former == 0
            # The ids both former groups applied were copied (p0-0..2 were never fetched again,
            # the group started at offset 3); the ones only test.a applied were not copied
            # but applied by the group when test.b took them.
            adopted = {
                row["event_id"]
                for row in await pool.fetch(
                    "SELECT event_id FROM applied_events WHERE group_id = $1", GROUP
                )
            }
            assert adopted == {e.id for e in [*p0, *p1]}
    finally:
        await pool.close()


async def test_a_group_that_has_its_own_offsets_ignores_nothing_and_applies_each_event_once(
    settings: Settings,
) -> None:
    """A restart in the middle of the take-over: the group's own offset is where it resumes,
    and a handler's former offset above it still holds that handler back."""
    topic = settings.topic_prefix + "orders.events"
    await apply_migrations(settings.database_url, SCHEMA, None)
    pool = await create_pool(settings.database_url, SCHEMA)
    await pool.execute("CREATE TABLE handed (id serial PRIMARY KEY, handler text, order_id text)")
    p0 = [cancellation(f"p0-{n}") for n in range(8)]
    await publish(settings, topic, 0, p0)
    await pool.executemany(
        "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset) VALUES ($1, $2, $3, $4)",
        [(GROUP, topic, 0, 4), ("test.a", topic, 0, 6)],
    )
    a, b = RecordsCancellations("test.a", topic), RecordsCancellations("test.b", topic)
    engine = Engine(GROUP, [a, b], make_consumer(settings, GROUP), pool, SCHEMA)

    async def caught_up() -> bool:
        stored = await pool.fetchval(
            "SELECT next_offset FROM consumer_offsets WHERE group_id = $1 AND partition = 0",
            GROUP,
        )
        return bool(stored == 8)

    try:
        async with running(engine):
            await wait_until(caught_up, timeout=30, what="the group past every record")
            assert await handed(pool, "test.a") == ["p0-6", "p0-7"]
            assert await handed(pool, "test.b") == [f"p0-{n}" for n in range(4, 8)]
            assert (
                await pool.fetchval(
                    "SELECT count(*) FROM consumer_offsets WHERE group_id = 'test.a'"
                )
                == 0
            )
    finally:
        await pool.close()


async def test_a_group_waits_for_its_handlers_former_groups_to_stop_before_taking_over(
    settings: Settings,
) -> None:
    """A rolling upgrade: the old workers (one group per handler) still run and consume while
    the new worker's group starts. It applies nothing until they stop; then it takes over, and
    each handler applies every event exactly once across the two versions."""
    topic = settings.topic_prefix + "orders.events"
    await apply_migrations(settings.database_url, SCHEMA, None)
    pool = await create_pool(settings.database_url, SCHEMA)
    await pool.execute("CREATE TABLE handed (id serial PRIMARY KEY, handler text, order_id text)")
    names = ("test.a", "test.b")
    # The old version: each handler its own engine, its group named after it.
    old = [
        Engine(
            name, [RecordsCancellations(name, topic)], make_consumer(settings, name), pool, SCHEMA
        )
        for name in names
    ]
    new = Engine(
        GROUP,
        [RecordsCancellations(name, topic) for name in names],
        make_consumer(settings, GROUP),
        pool,
        SCHEMA,
        former_groups=QuietOffsets(pool, quiet_s=2.0),
    )
    published: list[str] = []
    publishing = asyncio.Event()
    publishing.set()

    async def trickle() -> None:
        """Orders cancelled all along the upgrade, on partitions 0 and 1."""
        producer = make_producer(settings)
        await producer.start()
        try:
            while publishing.is_set():
                envelope = cancellation(f"c-{len(published)}")
                await producer.send_and_wait(
                    topic,
                    envelope.to_json(),
                    key=envelope.subject.encode(),
                    partition=len(published) % 2,
                    headers=envelope.kafka_headers(),
                )
                published.append(envelope.subject)
                await asyncio.sleep(0.1)
        finally:
            await producer.stop()

    async def count(sql: str, *args: object) -> int:
        return int(await pool.fetchval(sql, *args))

    async def handed_count() -> int:
        return await count("SELECT count(*) FROM handed")

    async def new_group_rows() -> int:
        return await count(
            "SELECT (SELECT count(*) FROM consumer_offsets WHERE group_id = $1)"
            " + (SELECT count(*) FROM applied_events WHERE group_id = $1)",
            GROUP,
        )

    publisher = asyncio.create_task(trickle())
    try:
        async with contextlib.AsyncExitStack() as old_workers:
            for engine in old:
                await old_workers.enter_async_context(running(engine))

            async def old_groups_store_offsets() -> bool:
                return (
                    await count("SELECT count(*) FROM consumer_offsets WHERE group_id <> $1", GROUP)
                    == 4
                )

            await wait_until(old_groups_store_offsets, timeout=30, what="both old groups applying")
            async with running(new):
                await wait_until(
                    lambda: at_once(bool(new.assigned) and new.waiting_for_former_groups),
                    timeout=30,
                    what="the new group assigned and holding its partitions",
                )
                # The old groups go on applying, past the quiet period, while the new one holds.
                during = await handed_count()
                await wait_until(
                    lambda: _at_least(handed_count, during + 100),
                    timeout=30,
                    what="the old groups applying more events",
                )
                assert new.waiting_for_former_groups
                assert await new_group_rows() == 0
                assert await count("SELECT count(*) FROM handed") == await count(
                    "SELECT count(*) FROM (SELECT DISTINCT handler, order_id FROM handed) d"
                )
                await old_workers.aclose()  # the old workers stop; events keep coming
                await wait_until(
                    lambda: at_once(not new.waiting_for_former_groups),
                    timeout=30,
                    what="the new group taking over",
                )
                publishing.clear()
                await publisher
                ends = {p: len(published[p::2]) for p in (0, 1)}

                async def caught_up() -> bool:
                    rows = await pool.fetch(
                        "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1",
                        GROUP,
                    )
                    return {row["partition"]: row["next_offset"] for row in rows} == ends

                await wait_until(caught_up, timeout=30, what="the new group past every record")
        # Every handler: every event once, across the old and the new version.
        for name in names:
            assert sorted(await handed(pool, name)) == sorted(published)
        assert len(published) > 60
    finally:
        publishing.clear()
        with contextlib.suppress(BaseException):
            await publisher
        await pool.close()


async def _at_least(current: Callable[[], Awaitable[int]], wanted: int) -> bool:
    return await current() >= wanted


async def test_kafka_lists_a_former_group_with_members_as_running(settings: Settings) -> None:
    """The Kafka check reads DescribeGroups as the broker answers it (Tansu answers a live
    group right; it is a member that left that it keeps listing)."""
    topic = settings.topic_prefix + "orders.events"
    await apply_migrations(settings.database_url, SCHEMA, None)
    pool = await create_pool(settings.database_url, SCHEMA)
    await pool.execute("CREATE TABLE handed (id serial PRIMARY KEY, handler text, order_id text)")
    old = Engine(
        "test.a",
        [RecordsCancellations("test.a", topic)],
        make_consumer(settings, "test.a"),
        pool,
        SCHEMA,
    )
    members = GroupMembers(settings.kafka_bootstrap, settings.topic_prefix)
    try:
        async with running(old):
            await wait_until(lambda: at_once(bool(old.assigned)), timeout=30, what="a member")
            assert await members.still_running(["test.a", "test.never"]) == ["test.a"]
    finally:
        await pool.close()
