"""An idle engine stops fetching, fetches at once when a topic it reads is announced or when a
probe of the partitions' end offsets finds records past its position."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from orderguard.shared.engine.idle import IdleFetching, Wakeups

TPS = {TopicPartition("inventory.events", 0), TopicPartition("inventory.events", 1)}


class FakeConsumer:
    """What IdleFetching touches of an AIOKafkaConsumer; the log ends where `ends` says."""

    def __init__(self) -> None:
        self.paused_tps: set[TopicPartition] = set()
        self.positions = dict.fromkeys(TPS, 5)
        self.ends = dict.fromkeys(TPS, 5)
        self.probes = 0

    def assignment(self) -> set[TopicPartition]:
        return set(TPS)

    def pause(self, *tps: TopicPartition) -> None:
        self.paused_tps |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused_tps -= set(tps)

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.probes += 1
        return {tp: self.ends[tp] for tp in tps}

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]


def idle_engine(
    probe_every_s: float = 60.0, wakeups: Wakeups | None = None
) -> tuple[IdleFetching, FakeConsumer, Wakeups]:
    consumer = FakeConsumer()
    wakeups = wakeups or Wakeups(probe_every_s)
    policy = IdleFetching(
        consumer,  # type: ignore[arg-type]
        ["inventory.events"],
        wakeups,
        idle_after_s=0.0,
        tick_s=0.05,
    )
    return policy, consumer, wakeups


async def test_an_engine_without_records_pauses_and_polls_nothing_until_woken() -> None:
    policy, consumer, wakeups = idle_engine()
    stop = asyncio.Event()

    assert await policy.before_poll(stop) is False  # idle: a tick for sweeps, no fetch
    assert policy.idle and consumer.paused_tps == TPS

    # A relay announced a topic this engine reads.
    wakeups._published(None, 0, "orderguard_published", "inventory.events")
    assert await policy.before_poll(stop) is True
    assert not policy.idle and consumer.paused_tps == set()
    # The announcement is used up by that fetch: resting again, only a new one wakes it.
    assert await policy.before_poll(stop) is False


async def test_a_probe_that_finds_the_log_where_it_was_keeps_the_engine_resting() -> None:
    policy, consumer, _ = idle_engine(probe_every_s=0.0)

    assert await policy.before_poll(asyncio.Event()) is False
    assert consumer.probes == 1
    assert policy.idle and consumer.paused_tps == TPS


async def test_records_published_outside_orderguard_are_found_by_the_probe() -> None:
    policy, consumer, _ = idle_engine(probe_every_s=0.0)
    assert await policy.before_poll(asyncio.Event()) is False
    consumer.ends[TopicPartition("inventory.events", 1)] = 6  # a producer we never hear from

    assert await policy.before_poll(asyncio.Event()) is True
    assert not policy.idle and consumer.paused_tps == set()


async def test_the_engines_of_a_process_share_one_offsets_request_per_probe() -> None:
    wakeups = Wakeups(probe_every_s=60.0)
    first, first_consumer, _ = idle_engine(wakeups=wakeups)
    second, second_consumer, _ = idle_engine(wakeups=wakeups)
    first._next_probe = second._next_probe = 0.0
    first.idle = second.idle = True

    assert await first._records_waiting() is False
    assert await second._records_waiting() is False
    assert first_consumer.probes + second_consumer.probes == 1


async def test_an_announcement_wakes_only_the_engines_reading_that_topic() -> None:
    published = Wakeups()
    inventory = published.watch(["inventory.events"])
    orders = published.watch(["orders.events", "payments.events"])

    published._published(None, 0, "orderguard_published", "payments.events,queues.warehouse")

    assert orders.is_set()
    assert not inventory.is_set()
