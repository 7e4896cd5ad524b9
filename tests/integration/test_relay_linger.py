"""The relay publishes at most every `linger_s` (real PostgreSQL, real broker): rows committed
soon after a publish wait and go out together, in one pass; after a quiet spell the first row
goes at once."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

import asyncpg
from aiokafka import AIOKafkaProducer

from orderguard.shared.kafka import make_producer
from orderguard.shared.outbox import OutboxRelay, write_outbox
from orderguard.shared.settings import Settings
from tests.testkit import at_once, engine_pool, outbox_message, wait_until

SCHEMA = "relaylinger"
LINGER_S = 1.5


async def test_rows_committed_while_the_relay_lingers_go_out_together(settings: Settings) -> None:
    orders = settings.topic_prefix + "orders.events"
    producer = make_producer(settings)
    await producer.start()
    async with engine_pool(settings, SCHEMA) as pool:
        try:
            await lingering_relay_publishes(pool, producer, orders)
        finally:
            await producer.stop()


async def lingering_relay_publishes(
    pool: asyncpg.Pool, producer: AIOKafkaProducer, orders: str
) -> None:
    stop = asyncio.Event()
    relay = OutboxRelay(pool, producer, SCHEMA, poll_interval_s=30, linger_s=LINGER_S)
    running = asyncio.create_task(relay.run(stop))

    async def commit(subject: str) -> None:
        async with pool.acquire() as conn, conn.transaction():  # a commit of its own
            await write_outbox(conn, SCHEMA, [outbox_message(orders, subject)])

    async def sent_at(subject: str) -> datetime | None:
        async with pool.acquire() as conn:
            return await conn.fetchval(  # type: ignore[no-any-return]
                "SELECT sent_at FROM outbox WHERE key = $1", subject.encode()
            )

    try:
        await wait_until(lambda: at_once(relay.is_leader), what="the relay leads")
        await commit("first")
        first = await wait_until(lambda: sent_at("first"), what="the first row sent")
        await commit("second")
        await commit("third")
        second = await wait_until(lambda: sent_at("second"), what="the second row sent")

        # Marked sent by one statement: published in one pass, not one pass per commit.
        assert await sent_at("third") == second
        # Not before the linger from the last publish (marked after it) had passed (give or
        # take the database's clock against the relay's).
        assert (second - first).total_seconds() >= LINGER_S - 0.05

        async def quiet_since_second() -> datetime | None:
            """The database's clock once a linger has passed since the last publish."""
            async with pool.acquire() as conn:
                now: datetime = await conn.fetchval("SELECT clock_timestamp()")
            return now if (now - second).total_seconds() >= LINGER_S else None

        committed = await wait_until(quiet_since_second, what="a quiet spell past the linger")
        await commit("after the quiet spell")
        quiet = await wait_until(lambda: sent_at("after the quiet spell"), what="sent")
        assert (quiet - committed).total_seconds() < LINGER_S  # at once, not after a linger
    finally:
        stop.set()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(running, timeout=15)
