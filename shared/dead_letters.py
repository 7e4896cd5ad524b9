"""Dead letters: what a consumer writes for a record it cannot apply, and re-driving them back
to the topic they came from once the cause is fixed."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from orderguard.shared import metrics
from orderguard.shared.kafka import MAX_RECORD_BYTES, make_producer
from orderguard.shared.logging import get_logger
from orderguard.shared.outbox import OutboxMessage
from orderguard.shared.settings import Settings
from orderguard.shared.topics import Topics

log = get_logger(__name__)

REDRIVE_GROUP = "orderguard.redrive"
# An oversized record's dead letter keeps this much of its value (dlq_truncated says so; the
# whole record stays where dlq_topic/dlq_partition/dlq_offset point, for the topic's retention).
OVERSIZED_COPY_BYTES = 64 * 1024
# The record's own headers are copied within these bounds, so a dead letter always fits a topic.
HEADER_COPY_MAX = 64
HEADER_VALUE_COPY_BYTES = 1024


def dead_letter_message(
    record: ConsumerRecord, reason: str, error: str, group: str
) -> OutboxMessage:
    """The record as it came (cut when oversized), to `<topic>.dlq.<group>`, with why in `dlq_*`
    headers and where the original is."""
    value = record.value or b""
    headers = [
        (_text(name), _text((value_ or b"")[:HEADER_VALUE_COPY_BYTES].decode(errors="replace")))
        for name, value_ in list(record.headers or ())[:HEADER_COPY_MAX]
        if not name.startswith("dlq_")
    ]
    headers += [
        ("dlq_reason", reason),
        ("dlq_error", _text(error[:2000])),
        ("dlq_group", group),
        ("dlq_topic", record.topic),
        ("dlq_partition", str(record.partition)),
        ("dlq_offset", str(record.offset)),
    ]
    if len(value) > MAX_RECORD_BYTES:
        headers += [("dlq_truncated", "true"), ("dlq_original_bytes", str(len(value)))]
        value = value[:OVERSIZED_COPY_BYTES]
    metrics.DEAD_LETTERS.labels(record.topic, group, reason).inc()
    log.warning(
        "record dead-lettered",
        group=group,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        reason=reason,
        error=error[:500],
    )
    return OutboxMessage(
        topic=Topics.dead_letter(record.topic, group),
        key=record.key[:HEADER_VALUE_COPY_BYTES] if record.key is not None else None,
        value=value,
        headers=headers,
    )


async def redrive(settings: Settings, dead_letter_topic: str, join_timeout_s: float = 30.0) -> int:
    """Publish every not yet re-driven record of `dead_letter_topic` to its original topic.

    The record keeps its key, value and original headers (its event id too: the consumer
    never recorded a dead-lettered event as applied). A truncated copy (an oversized record) is
    left alone: the log says where its original is. Progress is committed to the group
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
                    dlq = dict(headers)
                    origin = dlq.get("dlq_topic")
                    if origin is None:
                        log.warning(
                            "dead letter without dlq_topic header; left alone", offset=record.offset
                        )
                        continue
                    if "dlq_truncated" in dlq:
                        log.warning(
                            "oversized dead letter not re-driven; the original is in its topic",
                            offset=record.offset,
                            original_topic=origin.decode(),
                            original_partition=dlq.get("dlq_partition", b"?").decode(),
                            original_offset=dlq.get("dlq_offset", b"?").decode(),
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


def _text(text: str) -> str:
    """Header text the outbox can keep: PostgreSQL's jsonb refuses NUL characters."""
    return text.replace("\x00", "\ufffd")


async def _caught_up(consumer: AIOKafkaConsumer) -> bool:
    partitions: set[TopicPartition] = consumer.assignment()
    for tp in partitions:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True
