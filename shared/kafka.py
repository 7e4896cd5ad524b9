"""Kafka clients configured once: the producer for the outbox relay, consumers for the engine."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from orderguard.shared.settings import Settings
from orderguard.shared.topics import Topics

# One set of size limits, largest last, so that nothing we accept can be refused further on:
# an HTTP JSON body (shared/http) < a record we publish or apply < what a topic accepts < what a
# consumer fetches. A consumed record above MAX_RECORD_BYTES (a foreign producer on a broker that
# does not enforce the topic's limit, like Tansu) is dead-lettered as oversized, a bounded copy.
MAX_RECORD_BYTES = 1024 * 1024
# Kafka counts a record batch with its header and the record's headers: room for our dlq_* ones.
TOPIC_MAX_MESSAGE_BYTES = MAX_RECORD_BYTES + 64 * 1024
CONSUMER_MAX_PARTITION_FETCH_BYTES = 4 * 1024 * 1024


# How long a fetch may wait while records wait for the consumer (see `FetchWait`).
BEHIND_FETCH_WAIT_MS = 1000


class FetchWait:
    """The wait of a consumer's next fetches: its own `fetch_max_wait_ms` while it has read
    every partition to its end; `BEHIND_FETCH_WAIT_MS` while records wait for it.

    Tansu (memory storage, which never deletes a batch) finds a partition's records past the
    fetch offset by listing every batch the partition ever held, ~0.6 us a batch here, and stops
    listing when the fetch's wait is over: it then answers that partition with its high
    watermark and no records. At a 10 ms wait, a fetch at the end of 4 partitions of 20,000
    batches each brought none of them, of 10,000 each one or none (`bench/tansu_fetch.py`);
    half an hour into 100 orders/s, some partitions went unread for tens of seconds while the
    others kept up. A long wait costs nothing while records wait: a broker holds a fetch only
    while none of its partitions has any (Tansu answers once it has listed them). aiokafka has
    no setter for it; its fetcher reads the attribute whenever it builds a fetch.

    Only after a poll that was not full: such a poll took every record aiokafka held, so the
    records that wait are on partitions the broker answered without them, and the next fetch
    asks for those. After a full poll aiokafka may still hold records of some partitions, and
    its next fetch (after 100 ms, its prefetch backoff) asks only for the others, perhaps all
    read to their end: the broker would hold that fetch for the whole long wait, and every
    partition's next fetch behind it (one fetch in flight per broker). Draining a backlog of 6
    partitions, that stalled an engine for seconds as its first partitions reached their end."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self._behind = False

    def follow(self, records_wait: bool, full_poll: bool) -> None:
        """Set the wait of the fetches built from now on (before the event loop turns), after a
        poll that left records waiting or not, and was full or not."""
        behind = records_wait and not full_poll
        fetcher = self._consumer._fetcher
        if behind == self._behind or fetcher is None:  # no fetcher: not started
            return
        wait_ms = self._consumer._fetch_max_wait_ms
        fetcher._fetch_max_wait_ms = max(wait_ms, BEHIND_FETCH_WAIT_MS) if behind else wait_ms
        self._behind = behind


def make_producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        # Tansu rejects InitProducerId; on real Kafka idempotence guards retries against duplicates.
        enable_idempotence=not settings.kafka_embedded_compat,
        linger_ms=settings.outbox_linger_ms,
        max_batch_size=256 * 1024,
        compression_type=None,
        # Larger outbox rows are parked by the relay, not sent to be refused by the topic.
        max_request_size=TOPIC_MAX_MESSAGE_BYTES,
    )


def make_consumer(settings: Settings, group_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        # Installations sharing a cluster (a topic prefix each) must not share consumer groups.
        group_id=f"{settings.topic_prefix}{group_id}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
        session_timeout_ms=settings.consumer_session_timeout_ms,
        heartbeat_interval_ms=settings.consumer_heartbeat_interval_ms,
        max_partition_fetch_bytes=CONSUMER_MAX_PARTITION_FETCH_BYTES,
        isolation_level="read_uncommitted",
    )


async def create_topics(settings: Settings, extra: list[str] | None = None) -> list[str]:
    """Create every topic we own (and `extra`); existing ones are left as they are."""
    names = Topics(settings.topic_prefix).all() + list(extra or [])
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if missing:
            # Another process may create them between our list and create: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            name,
                            num_partitions=settings.topic_partitions,
                            replication_factor=settings.topic_replication_factor,
                            # Explicit, so describe_configs shows them on Tansu too.
                            topic_configs={
                                "retention.ms": str(7 * 24 * 3600 * 1000),
                                "cleanup.policy": "delete",
                                "max.message.bytes": str(TOPIC_MAX_MESSAGE_BYTES),
                            },
                        )
                        for name in missing
                    ]
                )
        return missing
    finally:
        await admin.close()


async def wait_for_broker(settings: Settings, timeout_s: float = 30.0) -> None:
    """Block until the broker answers metadata requests (start-up ordering in compose and k8s)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=3000
        )
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            await admin.close()
