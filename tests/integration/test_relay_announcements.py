"""A relay announces what it published by topic and event type (real PostgreSQL NOTIFY, real
broker): a resting engine is woken for the types it applies, not for every record on a topic
it reads for a few of its types."""

from __future__ import annotations

import asyncio
import contextlib

from orderguard.shared.db import apply_migrations, create_pool
from orderguard.shared.engine.idle import Wakeups
from orderguard.shared.kafka import make_producer
from orderguard.shared.outbox import OutboxRelay, write_outbox
from orderguard.shared.settings import Settings
from tests.testkit import outbox_message

SCHEMA = "relayannounces"


async def test_an_engine_is_woken_for_the_types_it_applies_only(settings: Settings) -> None:
    orders = settings.topic_prefix + "orders.events"
    await apply_migrations(settings.database_url, SCHEMA, None)
    pool = await create_pool(settings.database_url, SCHEMA)
    producer = make_producer(settings)
    await producer.start()
    wakeups = Wakeups()
    await wakeups.start(settings.database_url)
    placements = wakeups.watch([orders], frozenset({"order.placed.v1"}))
    cancellations = wakeups.watch([orders], frozenset({"order.cancelled.v1"}))
    shipments = wakeups.watch([orders], frozenset({"order.shipped.v1"}))
    stop = asyncio.Event()
    relay = asyncio.create_task(OutboxRelay(pool, producer, SCHEMA, poll_interval_s=0.2).run(stop))
    try:
        async with pool.acquire() as conn, conn.transaction():  # one pass of the relay, one NOTIFY
            await write_outbox(
                conn,
                SCHEMA,
                [
                    outbox_message(orders, "o-1", "order.placed.v1"),
                    outbox_message(orders, "o-2", "order.cancelled.v1"),
                ],
            )
        await asyncio.wait_for(placements.wait(), timeout=15)
        await asyncio.wait_for(cancellations.wait(), timeout=15)
        assert not shipments.is_set()
    finally:
        stop.set()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(relay, timeout=15)
        await wakeups.close()
        await producer.stop()
        await pool.close()
