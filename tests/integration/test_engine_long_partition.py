"""An engine reads a partition whose log is longer than the broker lists within the engine's
fetch wait, on the real broker and database.

Tansu lists every batch a partition holds to find the records past a fetch's offset, and stops
when the fetch's wait is over: it answers the partition with its high watermark and no records.
Here the wait is 1 ms and the partition holds thousands of one-record batches (as the outbox
relay writes them), so every fetch at the engine's own wait is cut short: the engine must see
that records wait (the high watermark past its position), not rest, and fetch with a wait long
enough for the broker to find them (`shared/kafka.FetchWait`). Before, every fetch came back
without records (from the first offset too: the broker gave up before its listing yielded the
first batch), and the engine rested on them for good."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from testkit import CountsCancellations, at_once, cancelled, engine_and_relay, wait_until

from orderguard.shared.db import apply_migrations, create_pool
from orderguard.shared.engine import Engine
from orderguard.shared.engine.idle import IdleFetching, Wakeups
from orderguard.shared.kafka import make_consumer, make_producer
from orderguard.shared.outbox import OutboxMessage, write_outbox
from orderguard.shared.settings import Settings

SCHEMA = "enginelong"
GROUP = "test.long"
KEY = b"one-partition"
# One-record batches on one partition: several times what Tansu lists in 1 ms here.
BATCHES = 6000


def cancellation(topic: str, order_id: str) -> OutboxMessage:
    envelope = cancelled(order_id)
    return OutboxMessage(
        topic, KEY, envelope.to_json(), [(k, v.decode()) for k, v in envelope.kafka_headers()]
    )


async def test_an_engine_reads_a_partition_longer_than_the_broker_lists_within_its_fetch_wait(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"consumer_fetch_max_wait_ms": 1})
    topic = settings.topic_prefix + "orders.events"
    await apply_migrations(settings.database_url, SCHEMA, None)
    pool = await create_pool(settings.database_url, SCHEMA)
    await pool.execute("CREATE TABLE cancellations (id serial PRIMARY KEY, order_id text)")
    # Each record acknowledged before the next is sent: one batch each.
    filler = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=0)
    await filler.start()
    try:
        for n in range(BATCHES):
            message = cancellation(topic, f"long-{n}")
            headers = [(k, v.encode()) for k, v in message.headers]
            await filler.send_and_wait(topic, message.value, key=KEY, headers=headers)
    finally:
        await filler.stop()
    producer = make_producer(settings)
    await producer.start()
    wakeups = Wakeups(probe_every_s=30.0)  # no probe: what wakes the engine is NOTIFY
    await wakeups.start(settings.database_url)
    consumer = make_consumer(settings, GROUP)
    idle = IdleFetching(
        consumer, [topic], wakeups, idle_after_s=1.0, flowing_fetch_every_s=0.02, fetch_wait_ms=1
    )
    engine = Engine(GROUP, [CountsCancellations(GROUP, topic)], consumer, pool, SCHEMA, idle=idle)

    async def applied() -> int:
        return int(await pool.fetchval("SELECT count(*) FROM cancellations"))

    async def at_least(count: int) -> bool:
        return await applied() >= count

    try:
        async with engine_and_relay(engine, pool, producer, SCHEMA):
            await wait_until(lambda: at_least(BATCHES), timeout=60, what="the whole partition")
            # Resting at the end of the long partition, the engine is woken for one more record,
            # whose fetch at the engine's own wait the broker again answers without it.
            await wait_until(lambda: at_once(idle.idle), what="the engine resting while idle")
            async with pool.acquire() as conn, conn.transaction():
                await write_outbox(conn, SCHEMA, [cancellation(topic, "announced")])
            await wait_until(lambda: at_least(BATCHES + 1), timeout=30, what="the announced one")
            assert await applied() == BATCHES + 1  # each applied once
    finally:
        await wakeups.close()
