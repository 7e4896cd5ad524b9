"""The idle probe reads the partitions' high watermarks from a fetch at where each log ended, on
the real broker: right after one-record and multi-record batches (where Tansu's ListOffsets
answers the last batch's base offset + 1), from any offset up to the end, and with a partition
that does not exist left out rather than guessed."""

from __future__ import annotations

from aiokafka import TopicPartition

from orderguard.shared.engine.idle import high_watermarks
from orderguard.shared.kafka import make_consumer, make_producer
from orderguard.shared.settings import Settings


async def test_the_probe_answers_each_partitions_true_end_from_any_offset_up_to_it(
    settings: Settings,
) -> None:
    topic = settings.topic_prefix + "payments.events"
    first, second, third = (TopicPartition(topic, p) for p in range(3))
    producer = make_producer(settings)
    consumer = make_consumer(settings, "test.probe")
    await producer.start()
    await consumer.start()
    try:
        for _ in range(2):  # two batches of one record
            await producer.send_and_wait(topic, b"one", partition=0)
        batch = producer.create_batch()  # one batch of three records
        for _ in range(3):
            batch.append(key=None, value=b"many", timestamp=None)
        await (await producer.send_batch(batch, topic, partition=1))
        consumer.assign([first, second, third])

        from_start = await high_watermarks(consumer, {first: 0, second: 0, third: 0})
        from_ends = await high_watermarks(consumer, from_start)
        past_the_last = await high_watermarks(
            consumer, {**from_start, TopicPartition(topic, 99): 0}
        )
    finally:
        await consumer.stop()
        await producer.stop()

    assert from_start == {first: 2, second: 3, third: 0}
    assert from_ends == from_start
    assert past_the_last == from_start
