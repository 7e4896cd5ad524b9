"""A unit of work wakes the relay leading its schema in the same process directly, without a
NOTIFY (which PostgreSQL signals to every listening backend); with no relay leading here, its
commit NOTIFYs the schema's channel, for a relay elsewhere (real PostgreSQL, real broker)."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from orderguard.shared.envelope import Envelope
from orderguard.shared.kafka import make_producer
from orderguard.shared.outbox import OutboxRelay, notify_channel, relay_leading_here, write_outbox
from orderguard.shared.settings import Settings
from orderguard.shared.uow import UnitOfWork
from tests.testkit import at_once, engine_pool, outbox_message, wait_until

SCHEMA = "relayhere"


async def test_a_commit_wakes_the_relay_leading_here_and_notifies_only_without_one(
    settings: Settings,
) -> None:
    orders = settings.topic_prefix + "orders.events"
    producer = make_producer(settings)
    await producer.start()
    heard: list[str] = []
    async with engine_pool(settings, SCHEMA) as pool:
        listener = await asyncpg.connect(settings.database_url)
        await listener.add_listener(notify_channel(SCHEMA), lambda *args: heard.append(args[3]))
        # Polls only every 30 s: a row sent within the test's waits was sent because it was woken.
        relay = OutboxRelay(pool, producer, SCHEMA, poll_interval_s=30)
        stop = asyncio.Event()
        running = asyncio.create_task(relay.run(stop))

        async def commit_unit(subject: str) -> None:
            async with UnitOfWork(pool, SCHEMA) as uow:
                uow.forward(
                    orders, Envelope(type="order.placed.v1", source="/t", subject=subject, data={})
                )
                await uow.commit()

        async def sent(subject: str) -> bool:
            async with pool.acquire() as conn:
                return bool(
                    await conn.fetchval(
                        "SELECT sent_at IS NOT NULL FROM outbox WHERE key = $1", subject.encode()
                    )
                )

        try:
            await wait_until(
                lambda: at_once(relay_leading_here(SCHEMA) is relay), what="the relay leads"
            )
            await commit_unit("woken here")
            await wait_until(lambda: sent("woken here"), timeout=10, what="the row sent")
            # A writer outside a unit of work (as another process) always NOTIFYs: once its
            # notification is heard, any the unit's commit had sent would have been heard first.
            async with pool.acquire() as conn, conn.transaction():
                await write_outbox(conn, SCHEMA, [outbox_message(orders, "from elsewhere")])
            await wait_until(lambda: at_once(heard), what="the other writer's NOTIFY")
            assert heard == [""]
            await wait_until(lambda: sent("from elsewhere"), timeout=10, what="its row sent")

            stop.set()
            await asyncio.wait_for(running, timeout=15)
            assert relay_leading_here(SCHEMA) is None
            await commit_unit("no relay here")
            await wait_until(lambda: at_once(len(heard) == 2), what="the unit's NOTIFY")
        finally:
            stop.set()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(running, timeout=15)
            await listener.close()
            await producer.stop()
