"""An engine that rests between fetches while records flow (and pauses when idle), on the real
broker and database: a backlog larger than a batch, then records one at a time, then, after
a quiet spell, an event announced by a relay — each applied once, in the order published."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from testkit import CountsCancellations, at_once, engine_and_relay, wait_until

from orderguard.shared.db import apply_migrations, create_pool
from orderguard.shared.engine import Engine
from orderguard.shared.engine.idle import IdleFetching, Wakeups
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.orders import OrderCancelled
from orderguard.shared.kafka import make_consumer, make_producer
from orderguard.shared.outbox import OutboxMessage, write_outbox
from orderguard.shared.settings import Settings

SCHEMA = "enginepaced"
GROUP = "test.paced"
KEY = b"one-partition"  # every record on one partition: the order published is the order applied


def cancellation(topic: str, order_id: str) -> OutboxMessage:
    data = OrderCancelled(
        order_id=order_id, reason="test", cancelled_by="test", cancelled_at=datetime.now(UTC)
    )
    envelope = Envelope(
        type="order.cancelled.v1",
        source="/test",
        subject=order_id,
        data=data.model_dump(mode="json"),
    )
    return OutboxMessage(
        topic, KEY, envelope.to_json(), [(k, v.decode()) for k, v in envelope.kafka_headers()]
    )


async def test_a_paced_engine_applies_a_backlog_a_trickle_and_an_announced_event_once_in_order(
    settings: Settings,
) -> None:
    topic = settings.topic_prefix + "orders.events"
    await apply_migrations(settings.database_url, SCHEMA, None)
    pool = await create_pool(settings.database_url, SCHEMA)
    await pool.execute("CREATE TABLE cancellations (id serial PRIMARY KEY, order_id text)")
    producer = make_producer(settings)
    await producer.start()
    wakeups = Wakeups(probe_every_s=30.0)  # no probe finds the announced event: NOTIFY does
    await wakeups.start(settings.database_url)
    handler = CountsCancellations(GROUP, topic)
    consumer = make_consumer(settings, GROUP)
    idle = IdleFetching(consumer, [topic], wakeups, idle_after_s=1.0, flowing_fetch_every_s=0.02)
    engine = Engine(GROUP, [handler], consumer, pool, SCHEMA, batch_max=40, idle=idle)

    async def applied() -> list[str]:
        rows = await pool.fetch("SELECT order_id FROM cancellations ORDER BY id")
        return [row["order_id"] for row in rows]

    sent: list[str] = []

    def headers(message: OutboxMessage) -> list[tuple[str, bytes]]:
        return [(k, v.encode()) for k, v in message.headers]

    try:
        async with engine_and_relay(engine, pool, producer, SCHEMA):
            await wait_until(lambda: at_once(engine.started.is_set()), what="the engine started")
            # A backlog of five full batches, published at once: read without rest.
            for n in range(200):
                message = cancellation(topic, f"backlog-{n}")
                await producer.send(topic, message.value, key=KEY, headers=headers(message))
                sent.append(f"backlog-{n}")
            await producer.flush()
            await wait_until(lambda: _at_least(applied, 200), timeout=60, what="the backlog")
            # A trickle: one record at a time through the relay, while the engine rests between
            # fetches. (Not as an outside publisher: on a loaded machine the gaps between them
            # outlast `idle_after_s`, and then only this test's 30 s probe would find the next.)
            for n in range(10):
                async with pool.acquire() as conn, conn.transaction():
                    await write_outbox(conn, SCHEMA, [cancellation(topic, f"trickle-{n}")])
                sent.append(f"trickle-{n}")
            await wait_until(lambda: _at_least(applied, 210), what="the trickle")
            # A quiet spell: the engine pauses; a relay's announcement wakes it.
            await wait_until(lambda: at_once(idle.idle), what="the engine resting while idle")
            async with pool.acquire() as conn, conn.transaction():
                await write_outbox(conn, SCHEMA, [cancellation(topic, "announced")])
            sent.append("announced")
            await wait_until(lambda: _at_least(applied, 211), what="the announced event")
            assert await applied() == sent
    finally:
        await wakeups.close()


async def _at_least(applied: Callable[[], Awaitable[list[str]]], count: int) -> bool:
    return len(await applied()) >= count
