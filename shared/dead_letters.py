"""Re-driving dead letters: back to the topic they came from, once the cause is fixed."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from orderguard.shared.kafka import make_producer
from orderguard.shared.logging import get_logger
from orderguard.shared.settings import Settings

log = get_logger(__name__)

REDRIVE_GROUP = "orderguard.redrive"


async def redrive(settings: Settings, dead_letter_topic: str, join_timeout_s: float = 30.0) -> int:
    """Publish every not yet re-driven record of `dead_letter_topic` to its original topic.

    The record keeps its key, value and original headers (its event id too: the consumer
    never recorded a dead-lettered event as applied). Progress is committed to the group
    `orderguard.redrive`, so running it again re-drives only what arrived since.
    Returns how many records were re-driven.
    """
    consumer = AIOKafkaConsumer(
        dead_letter_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=REDRIVE_GROUP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.consumer_session_timeout_ms,
        heartbeat_interval_ms=settings.consumer_heartbeat_interval_ms,
        fetch_max_wait_ms=100,
    )
    producer = make_producer(settings)
    await consumer.start()
    await producer.start()
    redriven = 0
    join_deadline = asyncio.get_running_loop().time() + join_timeout_s
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            if not batch:
                if consumer.assignment() and await _caught_up(consumer):
                    return redriven
                if not consumer.assignment() and asyncio.get_running_loop().time() > join_deadline:
                    raise TimeoutError(
                        f"no partitions of {dead_letter_topic} assigned in {join_timeout_s}s"
                    )
                continue
            sends = []
            for records in batch.values():
                for record in records:
                    headers = list(record.headers or ())
                    origin = dict(headers).get("dlq_topic")
                    if origin is None:
                        log.warning(
                            "dead letter without dlq_topic header; left alone", offset=record.offset
                        )
                        continue
                    kept = [(k, v) for k, v in headers if not k.startswith("dlq_")]
                    kept.append(("redriven_from", dead_letter_topic.encode()))
                    sends.append(
                        await producer.send(
                            origin.decode(), record.value, key=record.key, headers=kept
                        )
                    )
            await asyncio.gather(*sends)
            await consumer.commit()
            redriven += len(sends)
    finally:
        await producer.stop()
        await consumer.stop()


async def _caught_up(consumer: AIOKafkaConsumer) -> bool:
    partitions: set[TopicPartition] = consumer.assignment()
    for tp in partitions:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True
