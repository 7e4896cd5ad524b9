"""An idle engine stops fetching, fetches at once when a topic it reads is announced, probes
with one long fetch now and then, and fetches continuously again once records flow."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from orderguard.shared.engine.idle import PROBE_FETCH_WAIT_MS, IdleFetching, PublishedTopics

TPS = {TopicPartition("inventory.events", 0), TopicPartition("inventory.events", 1)}


class FakeFetcher:
    def __init__(self, wait_ms: int) -> None:
        self._fetch_max_wait_ms = wait_ms


class FakeConsumer:
    """What IdleFetching touches of an AIOKafkaConsumer."""

    def __init__(self) -> None:
        self._fetch_max_wait_ms = 10
        self._fetcher = FakeFetcher(10)
        self.paused_tps: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return set(TPS)

    def pause(self, *tps: TopicPartition) -> None:
        self.paused_tps |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused_tps -= set(tps)


def idle_engine(probe_every_s: float = 60.0) -> tuple[IdleFetching, FakeConsumer, asyncio.Event]:
    consumer = FakeConsumer()
    woken = asyncio.Event()
    policy = IdleFetching(
        consumer,  # type: ignore[arg-type]
        woken,
        idle_after_s=0.0,
        probe_every_s=probe_every_s,
        tick_s=0.05,
    )
    return policy, consumer, woken


async def test_an_engine_without_records_pauses_and_polls_nothing_until_woken() -> None:
    policy, consumer, woken = idle_engine()
    stop = asyncio.Event()

    assert await policy.before_poll(stop) is False  # idle: a tick for sweeps, no fetch
    assert policy.idle and consumer.paused_tps == TPS

    woken.set()  # a relay announced a topic this engine reads
    assert await policy.before_poll(stop) is True
    assert not policy.idle and consumer.paused_tps == set()
    assert consumer._fetcher._fetch_max_wait_ms == 10  # the short wait while active
    assert not woken.is_set()  # cleared before the fetch: a later announcement wakes it again


async def test_a_probe_is_one_long_fetch_then_the_partitions_rest_again() -> None:
    policy, consumer, _ = idle_engine(probe_every_s=0.0)
    stop = asyncio.Event()

    assert await policy.before_poll(stop) is True  # idle, and a probe is due at once
    assert consumer.paused_tps == set()
    assert consumer._fetcher._fetch_max_wait_ms == PROBE_FETCH_WAIT_MS
    assert policy.poll_timeout_ms > PROBE_FETCH_WAIT_MS

    policy.after_poll(had_records=False)
    assert policy.idle and consumer.paused_tps == TPS
    assert consumer._fetcher._fetch_max_wait_ms == 10


async def test_records_found_by_a_probe_make_the_engine_fetch_continuously() -> None:
    policy, consumer, _ = idle_engine(probe_every_s=0.0)
    assert await policy.before_poll(asyncio.Event()) is True

    policy.after_poll(had_records=True)
    assert not policy.idle and consumer.paused_tps == set()
    assert consumer._fetcher._fetch_max_wait_ms == 10
    assert policy.poll_timeout_ms == 200


async def test_an_announcement_wakes_only_the_engines_reading_that_topic() -> None:
    published = PublishedTopics()
    inventory = published.watch(["inventory.events"])
    orders = published.watch(["orders.events", "payments.events"])

    published._published(None, 0, "orderguard_published", "payments.events,queues.warehouse")

    assert orders.is_set()
    assert not inventory.is_set()
