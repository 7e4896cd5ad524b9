"""The engine on the real broker and database, fed what producers really send: events without
an id, with a lying `ce_type` header, with a subject that is not their aggregate id (each
dead-lettered with a reason), and copies of events already applied (each applied once, with or
without the `ce_id` header, back to back or after other events); and the batch of an owner the
partition moved on from (applied only past the newer owner's offset)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import orjson
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from testkit import CountsCancellations, Record, engine_and_relay, publish, read_topic, wait_until

from orderguard.shared.db import apply_migrations, create_pool
from orderguard.shared.engine import Engine
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.orders import OrderCancelled
from orderguard.shared.kafka import create_topics, make_consumer, make_producer
from orderguard.shared.settings import Settings
from orderguard.shared.topics import Topics

SCHEMA = "enginecontract"
KEY = b"one-partition"  # every record on one partition: the order of the test is the order applied


GROUP = "test.contract"


def cancellation(order_id: str, **envelope: str) -> Envelope:
    data = OrderCancelled(
        order_id=order_id, reason="test", cancelled_by="test", cancelled_at=datetime.now(UTC)
    )
    fields = {"type": "order.cancelled.v1", "source": "/test", "subject": order_id, **envelope}
    return Envelope(data=data.model_dump(mode="json"), **fields)  # type: ignore[arg-type]


@dataclass
class Harness:
    settings: Settings
    topic: str
    dead_letters: str
    pool: asyncpg.Pool

    async def send(self, value: bytes, headers: list[tuple[str, bytes]], key: bytes = KEY) -> None:
        await publish(self.settings, self.topic, value, key, headers)

    async def send_event(self, envelope: Envelope, *, with_ce_id: bool = True) -> None:
        headers = [(k, v) for k, v in envelope.kafka_headers() if with_ce_id or k != "ce_id"]
        await self.send(envelope.to_json(), headers)

    async def applied(self) -> list[str]:
        rows = await self.pool.fetch("SELECT order_id FROM cancellations ORDER BY id")
        return [row["order_id"] for row in rows]

    async def offsets_at(self, total: int) -> bool:
        stored = await self.pool.fetchval(
            "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE group_id = $1",
            GROUP,
        )
        return bool(stored == total)


@contextlib.asynccontextmanager
async def running_engine(settings: Settings) -> AsyncIterator[Harness]:
    topic = settings.topic_prefix + "orders.events"
    dead_letters = Topics.dead_letter(topic, GROUP)
    await create_topics(settings, [dead_letters])
    await apply_migrations(settings.database_url, SCHEMA, None)
    pool = await create_pool(settings.database_url, SCHEMA)
    await pool.execute("CREATE TABLE cancellations (id serial PRIMARY KEY, order_id text)")
    producer = make_producer(settings)
    await producer.start()
    handler = CountsCancellations(GROUP, topic)
    engine = Engine(handler.name, [handler], make_consumer(settings, handler.name), pool, SCHEMA)
    async with engine_and_relay(engine, pool, producer, SCHEMA):
        yield Harness(settings, topic, dead_letters, pool)


async def zombie_of_partition_0(pool: asyncpg.Pool, topic: str, newer_owners_offset: int) -> Engine:
    """An engine of the group still at work on `topic` after its partition 0 moved on to a newer
    owner, which stored `newer_owners_offset` there."""
    await pool.execute(
        "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)"
        " VALUES ($1, $2, 0, $3)",
        GROUP,
        topic,
        newer_owners_offset,
    )
    return Engine(GROUP, [CountsCancellations(GROUP, topic)], None, pool, SCHEMA)  # type: ignore[arg-type]


async def stored_offsets(pool: asyncpg.Pool) -> dict[int, int]:
    """The group's stored next offsets by partition."""
    rows = await pool.fetch(
        "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1", GROUP
    )
    return {row["partition"]: row["next_offset"] for row in rows}


def reasons(letters: list[Record]) -> dict[str, tuple[bytes, bytes]]:
    """Dead letters by the order id in their body: (dlq_reason, dlq_error)."""
    return {
        orjson.loads(letter.value)["data"]["order_id"]: (
            letter.headers["dlq_reason"],
            letter.headers["dlq_error"],
        )
        for letter in letters
    }


async def test_events_that_break_the_contract_are_dead_lettered_with_a_reason(
    settings: Settings,
) -> None:
    async with running_engine(settings) as harness:
        await harness.send_event(cancellation("good-1"))
        # A valid event whose ce_type header is corrupt: neither skipped nor applied.
        corrupt = cancellation("corrupt-header")
        await harness.send(
            corrupt.to_json(),
            [("ce_type", b"order.cancel\xffled.v1"), ("ce_id", corrupt.id.encode())],
        )
        # A ce_type header naming another event type than the body's.
        lying = cancellation("lying-header")
        await harness.send(lying.to_json(), [("ce_type", b"order.cancelled.v2")])
        # No id: applied under a made-up id, a re-sent copy would count twice.
        without_id = orjson.loads(cancellation("no-id").to_json())
        del without_id["id"]
        await harness.send(orjson.dumps(without_id), [("ce_type", b"order.cancelled.v1")])
        await harness.send(orjson.dumps(without_id), [])
        # A subject that is not the order id the data names.
        await harness.send_event(cancellation("wrong-subject", subject="another-order"))
        await harness.send_event(cancellation("good-2"))

        letters = await wait_until(
            lambda: _at_least(settings, harness.dead_letters, 5),
            timeout=30,
            what="five dead letters",
        )
        await wait_until(lambda: harness.offsets_at(7), what="every record consumed")
        assert await harness.applied() == ["good-1", "good-2"]
        found = reasons(letters)
        assert len(letters) == 5
        assert found["corrupt-header"][0] == b"malformed"
        assert b"ce_type header" in found["corrupt-header"][1]
        assert found["lying-header"][0] == b"malformed"
        assert b"order.cancelled.v2" in found["lying-header"][1]
        assert found["no-id"] == (b"malformed", b"id: Field required")
        assert found["wrong-subject"][0] == b"invalid"
        assert b"subject must be the aggregate id, data.order_id" in found["wrong-subject"][1]
        # Dead letters are not recorded as applied: a re-drive after a fix applies them.
        recorded = await harness.pool.fetchval(
            "SELECT count(*) FROM applied_events WHERE group_id = $1", GROUP
        )
        assert recorded == 2


async def test_copies_of_an_event_are_applied_once(settings: Settings) -> None:
    async with running_engine(settings) as harness:
        first, second, third = (cancellation(f"order-{n}") for n in (1, 2, 3))
        # Back to back, in one batch; a copy without ce_id header (foreign producers); a stale
        # copy after later events (a relay that re-publishes what it sent before it crashed).
        for envelope, with_ce_id in [
            (first, True),
            (first, True),
            (second, True),
            (first, False),
            (second, False),
            (third, True),
            (second, True),
        ]:
            await harness.send_event(envelope, with_ce_id=with_ce_id)
        await wait_until(lambda: harness.offsets_at(7), what="every record consumed")
        # In a later batch too, once the first copies are committed.
        await harness.send_event(first)
        await harness.send_event(third, with_ce_id=False)
        await wait_until(lambda: harness.offsets_at(9), what="the late copies consumed")
        assert await harness.applied() == ["order-1", "order-2", "order-3"]
        assert await read_topic(settings, harness.dead_letters) == []


async def test_records_of_types_not_ours_are_skipped_and_their_offsets_stored(
    settings: Settings,
) -> None:
    async with running_engine(settings) as harness:
        # Placements: a known type this group does not apply, passed over unread (their
        # bodies are not the point), before and after the one cancellation it does apply.
        placed = [
            Envelope(type="order.placed.v1", source="/test", subject=f"o-{n}", data={})
            for n in range(6)
        ]
        for envelope in placed[:3]:
            await harness.send_event(envelope)
        await wait_until(lambda: harness.offsets_at(3), what="the first placements passed over")
        await harness.send_event(cancellation("the-one"))
        for envelope in placed[3:]:
            await harness.send_event(envelope)
        # The last three are stored without a batch of ours to carry them: once records stop.
        await wait_until(lambda: harness.offsets_at(7), what="every record consumed")
        assert await harness.applied() == ["the-one"]
        recorded = await harness.pool.fetchval(
            "SELECT count(*) FROM applied_events WHERE group_id = $1", GROUP
        )
        assert recorded == 1


async def test_offsets_stored_for_skipped_records_never_move_back(settings: Settings) -> None:
    """A zombie owner storing where it passed over records must not undo the progress of the
    partition's new owner."""
    await apply_migrations(settings.database_url, SCHEMA, None)
    pool = await create_pool(settings.database_url, SCHEMA)
    topic = settings.topic_prefix + "orders.events"
    ahead, behind = TopicPartition(topic, 0), TopicPartition(topic, 1)
    try:
        zombie = await zombie_of_partition_0(pool, topic, newer_owners_offset=50)
        zombie.assigned = {ahead, behind}
        zombie._unstored = {ahead: 7, behind: 3}

        await zombie._store_passed()

        assert await stored_offsets(pool) == {0: 50, 1: 3}
        assert zombie._unstored == {}
    finally:
        await pool.close()


async def _at_least(settings: Settings, topic: str, count: int) -> list[Record] | None:
    found = await read_topic(settings, topic)
    return found if len(found) >= count else None


async def test_a_batch_skips_what_a_newer_owner_of_its_partition_applied(
    settings: Settings,
) -> None:
    """A zombie owner's batch (records it fetched before the partition moved on) applies only the
    records past the offset stored by the partition's newer owner, records only their ids, and
    leaves the stored offset where the newer owner put it when that is further."""
    await apply_migrations(settings.database_url, SCHEMA, None)
    pool = await create_pool(settings.database_url, SCHEMA)
    topic = settings.topic_prefix + "orders.events"

    def record(partition: int, offset: int, order_id: str) -> ConsumerRecord[bytes, bytes]:
        envelope = cancellation(order_id)
        value = envelope.to_json()
        return ConsumerRecord(
            topic,
            partition,
            offset,
            0,
            0,
            None,
            value,
            None,
            0,
            len(value),
            envelope.kafka_headers(),
        )

    try:
        await pool.execute("CREATE TABLE cancellations (id serial PRIMARY KEY, order_id text)")
        # The newer owner applied offsets 0 and 1 of partition 0 (its ids are its own business).
        zombie = await zombie_of_partition_0(pool, topic, newer_owners_offset=2)
        batch = [record(0, n, f"p0-{n}") for n in range(4)] + [
            record(1, n, f"p1-{n}") for n in range(2)
        ]

        async def applied() -> list[str]:
            rows = await pool.fetch("SELECT order_id FROM cancellations ORDER BY id")
            return [row["order_id"] for row in rows]

        async def ids_recorded() -> int:
            return int(
                await pool.fetchval(
                    "SELECT count(*) FROM applied_events WHERE group_id = $1", GROUP
                )
            )

        next_offsets = await zombie._apply(batch)

        assert await applied() == ["p0-2", "p0-3", "p1-0", "p1-1"]
        assert await ids_recorded() == 4
        assert await stored_offsets(pool) == {0: 4, 1: 2}
        assert next_offsets == {TopicPartition(topic, 0): 4, TopicPartition(topic, 1): 2}

        # The newer owner went on to offset 10: a later batch of the zombie's applies nothing
        # there, records no id, and moves nothing back.
        await pool.execute(
            "UPDATE consumer_offsets SET next_offset = 10 WHERE group_id = $1 AND partition = 0",
            GROUP,
        )
        next_offsets = await zombie._apply([record(0, n, f"late-{n}") for n in (4, 5)])

        assert await applied() == ["p0-2", "p0-3", "p1-0", "p1-1"]
        assert await ids_recorded() == 4
        assert await stored_offsets(pool) == {0: 10, 1: 2}
        assert next_offsets == {}
    finally:
        await pool.close()
