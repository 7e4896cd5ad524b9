"""An idle engine stops fetching, fetches at once when a topic it reads is announced or when a
probe of the partitions' high watermarks finds records past its position. An engine that read its
partitions to the end rests the same way, probing more often while records flow."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from orderguard.shared.engine import Engine
from orderguard.shared.engine.idle import POLL_ROUND_TRIP_MS, IdleFetching, Wakeups
from orderguard.shared.outbox import announcement

TPS = {TopicPartition("inventory.events", 0), TopicPartition("inventory.events", 1)}


class FakeConsumer:
    """What IdleFetching touches of an AIOKafkaConsumer; the log ends where `ends` says."""

    def __init__(self) -> None:
        self.paused_tps: set[TopicPartition] = set()
        self.positions = dict.fromkeys(TPS, 5)
        self.ends = dict.fromkeys(TPS, 5)
        self.probes = 0
        # Where the last probe asked each partition's high watermark from.
        self.asked_from: dict[TopicPartition, int] = {}
        # When the broker last answered a fetch (by default: during every poll).
        self.answered_ms: int | None = 2**62

    def assignment(self) -> set[TopicPartition]:
        return set(TPS)

    def pause(self, *tps: TopicPartition) -> None:
        self.paused_tps |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused_tps -= set(tps)

    async def high_watermarks(self, since: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        self.probes += 1
        self.asked_from = dict(since)
        return {tp: self.ends[tp] for tp in since if tp in self.ends}

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def last_poll_timestamp(self, tp: TopicPartition) -> int | None:
        return self.answered_ms


async def fake_high_watermarks(
    consumer: FakeConsumer, since: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    return await consumer.high_watermarks(since)


def probing(probe_every_s: float) -> Wakeups:
    return Wakeups(probe_every_s, ask_ends=fake_high_watermarks)  # type: ignore[arg-type]


def idle_engine(
    probe_every_s: float = 60.0, wakeups: Wakeups | None = None, flowing_fetch_every_s: float = 0.0
) -> tuple[IdleFetching, FakeConsumer, Wakeups]:
    consumer = FakeConsumer()
    wakeups = wakeups or probing(probe_every_s)
    policy = IdleFetching(
        consumer,  # type: ignore[arg-type]
        ["inventory.events"],
        wakeups,
        idle_after_s=0.0,
        tick_s=0.05,
        flowing_fetch_every_s=flowing_fetch_every_s,
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


async def test_a_probe_asks_each_partition_from_where_the_last_probe_found_its_end() -> None:
    # A log that did not grow is asked from its end: the broker reads no record for it.
    policy, consumer, _ = idle_engine(probe_every_s=0.0)
    first, second = sorted(TPS)
    consumer.positions[first] = 3  # behind: records waiting
    consumer.ends[second] = 8

    assert await policy._records_waiting() is True
    assert consumer.asked_from == {first: 3, second: 5}  # nothing known yet: the positions
    consumer.ends[second] = 9
    await policy._records_waiting()
    assert consumer.asked_from == {first: 5, second: 8}
    await policy._records_waiting()
    assert consumer.asked_from == {first: 5, second: 9}


async def test_a_partition_the_probe_got_no_answer_for_is_fetched_from() -> None:
    policy, consumer, _ = idle_engine(probe_every_s=0.0)
    del consumer.ends[TopicPartition("inventory.events", 1)]  # answered with an error

    assert await policy.before_poll(asyncio.Event()) is True
    assert not policy.idle and consumer.paused_tps == set()


async def test_the_engines_of_a_process_share_one_offsets_request_per_probe() -> None:
    wakeups = probing(probe_every_s=60.0)
    first, first_consumer, _ = idle_engine(wakeups=wakeups)
    second, second_consumer, _ = idle_engine(wakeups=wakeups)
    first._next_probe = second._next_probe = 0.0
    first.idle = second.idle = True

    assert await first._records_waiting() is False
    assert await second._records_waiting() is False
    assert first_consumer.probes + second_consumer.probes == 1


async def test_an_engine_never_reads_the_answer_of_its_own_last_probe_again() -> None:
    """A probe due a period after the last found that probe's answer still fresh (asked a few
    ms after it was due) and read it: every other probe asked nothing, and records of an outside
    publisher waited up to two periods."""
    policy, consumer, _ = idle_engine(probe_every_s=60.0)

    assert await policy._records_waiting() is False
    consumer.ends[TopicPartition("inventory.events", 1)] = 6  # a producer we never hear from

    assert await policy._records_waiting() is True
    assert consumer.probes == 2


async def test_an_announcement_wakes_only_the_engines_reading_that_topic() -> None:
    published = Wakeups()
    inventory = published.watch(["inventory.events"])
    orders = published.watch(["orders.events", "payments.events"])

    published._published(None, 0, "orderguard_published", "payments.events,queues.warehouse")

    assert orders.is_set()
    assert not inventory.is_set()


def test_an_announcement_wakes_only_the_engines_that_apply_a_type_published() -> None:
    published = Wakeups()
    placements = published.watch(["orders.events"], frozenset({"order.placed.v1"}))
    cancellations = published.watch(["orders.events"], frozenset({"order.cancelled.v1"}))
    everything = published.watch(["orders.events"])

    published._published(None, 0, "orderguard_published", "orders.events:order.placed.v1")

    assert placements.is_set() and everything.is_set()
    assert not cancellations.is_set()


def test_an_announcement_without_types_wakes_every_engine_reading_the_topic() -> None:
    """A relay of an older release, or a row without `ce_type`, names the topic alone."""
    published = Wakeups()
    cancellations = published.watch(["orders.events"], frozenset({"order.cancelled.v1"}))

    published._published(None, 0, "orderguard_published", "orders.events")

    assert cancellations.is_set()


def test_a_relay_announces_known_types_by_topic_and_other_rows_by_topic_alone() -> None:
    rows = [
        {"topic": "orders.events", "headers": [("ce_type", "order.placed.v1"), ("ce_id", "1")]},
        {"topic": "orders.events", "headers": [("ce_id", "2"), ("ce_type", "order.placed.v1")]},
        {"topic": "inventory.events", "headers": [("ce_type", "inventory.reserved.v1")]},
        # A dead letter keeps its record's headers, whatever they said.
        {"topic": "orders.events.dlq.x", "headers": [("ce_type", "garbage,:" * 1000)]},
        {"topic": "queues.warehouse", "headers": []},
    ]

    said = announcement(rows)  # type: ignore[arg-type]

    assert said.split(",") == [
        "inventory.events:inventory.reserved.v1",
        "orders.events.dlq.x",
        "orders.events:order.placed.v1",
        "queues.warehouse",
    ]


def flowing_engine(
    flowing_fetch_every_s: float, linger_s: float = 0.0
) -> tuple[IdleFetching, FakeConsumer, Wakeups]:
    consumer = FakeConsumer()
    wakeups = probing(60.0)
    policy = IdleFetching(
        consumer,  # type: ignore[arg-type]
        ["inventory.events"],
        wakeups,
        idle_after_s=60.0,
        flowing_fetch_every_s=flowing_fetch_every_s,
        linger_s=linger_s,
    )
    return policy, consumer, wakeups


async def test_an_engine_that_read_to_the_end_rests_until_an_announcement() -> None:
    policy, consumer, wakeups = flowing_engine(flowing_fetch_every_s=60.0)
    stop = asyncio.Event()
    assert await policy.before_poll(stop) is True

    policy.after_poll(had_records=True, caught_up=True)
    # Paused at once: aiokafka's fetcher sends no fetch while the batch is applied.
    assert consumer.paused_tps == TPS and not policy.idle

    wakeups._published(None, 0, "orderguard_published", "inventory.events")
    assert await policy.before_poll(stop) is True
    assert consumer.paused_tps == set()


async def test_while_records_flow_a_resting_engine_looks_for_records_of_outside_publishers() -> (
    None
):
    policy, consumer, _ = flowing_engine(flowing_fetch_every_s=0.001)
    policy.after_poll(had_records=True, caught_up=True)
    assert consumer.paused_tps == TPS

    # Its next look (a fetch) is due within a millisecond; nothing was announced.
    assert await policy.before_poll(asyncio.Event()) is True
    assert consumer.paused_tps == set()
    assert consumer.probes == 0  # a look is a fetch, not an end offsets request


async def test_once_quiet_a_resting_engine_probes_end_offsets_instead_of_looking() -> None:
    policy, consumer, _ = idle_engine(probe_every_s=0.0, flowing_fetch_every_s=60.0)

    assert await policy.before_poll(asyncio.Event()) is False  # quiet: the log ends where it was
    assert consumer.probes == 1 and policy.idle and consumer.paused_tps == TPS


async def test_a_poll_that_leaves_records_waiting_fetches_again_at_once() -> None:
    policy, consumer, _ = flowing_engine(flowing_fetch_every_s=60.0)
    assert await policy.before_poll(asyncio.Event()) is True

    policy.after_poll(had_records=True, caught_up=False)  # a full batch, or a partition behind

    assert consumer.paused_tps == set()
    assert await policy.before_poll(asyncio.Event()) is True


async def test_without_a_flowing_probe_an_engine_fetches_continuously_while_records_flow() -> None:
    policy, consumer, _ = flowing_engine(flowing_fetch_every_s=0.0)
    assert await policy.before_poll(asyncio.Event()) is True

    policy.after_poll(had_records=True, caught_up=True)

    assert consumer.paused_tps == set()
    assert await policy.before_poll(asyncio.Event()) is True


def test_the_engine_rests_only_after_a_poll_that_read_every_partition_to_its_end() -> None:
    class Consumer:
        def highwater(self, tp: TopicPartition) -> int | None:
            return {first: 10, second: 50}.get(tp)

    class Handler:
        name = "inventory.worker"
        topics = ("inventory.events",)
        event_types = frozenset({"inventory.stock_changed.v1"})

    first, second = sorted(TPS)
    engine = Engine(Handler.name, [Handler()], Consumer(), None, "s", batch_max=3)  # type: ignore[arg-type, list-item]

    def records(tp: TopicPartition, *offsets: int) -> list[ConsumerRecord]:
        return [
            ConsumerRecord(tp.topic, tp.partition, o, 0, 0, None, b"", None, 0, 0, ())
            for o in offsets
        ]

    assert engine._read_to_end({first: records(first, 8, 9)}, 2)
    assert not engine._read_to_end({second: records(second, 8, 9)}, 2)  # 40 more wait there
    assert not engine._read_to_end({first: records(first, 7, 8, 9)}, 3)  # a full batch: maybe more
    assert engine._read_to_end({}, 0)


async def test_looks_that_find_nothing_come_less_and_less_often_until_one_finds_records() -> None:
    policy, consumer, _ = flowing_engine(flowing_fetch_every_s=0.001)
    policy.after_poll(had_records=True, caught_up=True)

    assert await policy.before_poll(asyncio.Event()) is True  # a look
    # the broker answered it: nothing there
    policy.after_poll(had_records=False, caught_up=True)
    assert policy._look_every_s == 0.002

    assert await policy.before_poll(asyncio.Event()) is True  # the next look, later
    consumer.answered_ms = None  # not answered within the poll: no conclusion
    policy.after_poll(had_records=False, caught_up=True)
    assert policy._look_every_s == 0.002
    assert consumer.paused_tps == set()  # it polls again for the answer of that look

    assert await policy.before_poll(asyncio.Event()) is True
    consumer.answered_ms = 2**62
    policy.after_poll(had_records=True, caught_up=True)  # an outside publisher writes again
    assert policy._look_every_s == 0.001


async def test_records_of_an_answer_kept_while_resting_are_followed_by_a_fetch_at_once() -> None:
    policy, consumer, _ = flowing_engine(flowing_fetch_every_s=0.001)
    assert await policy.before_poll(asyncio.Event()) is True
    consumer.answered_ms = 0  # the records came from an answer that arrived before this poll

    policy.after_poll(had_records=True, caught_up=True)

    assert consumer.paused_tps == set()  # what was written since is fetched now


async def test_a_wake_for_records_already_read_costs_one_fetch_then_rest() -> None:
    """Each announcement wakes every engine reading its topic, often for records an earlier
    poll read already. The woken poll lasts one fetch's answer (aiokafka's getmany would
    otherwise fetch again and again until its timeout), and an empty answer means rest."""
    policy, consumer, wakeups = flowing_engine(flowing_fetch_every_s=60.0)
    stop = asyncio.Event()
    assert await policy.before_poll(stop) is True
    policy.after_poll(had_records=True, caught_up=True)
    assert consumer.paused_tps == TPS

    wakeups._published(None, 0, "orderguard_published", "inventory.events")
    assert await policy.before_poll(stop) is True
    assert consumer.paused_tps == set()
    assert policy.poll_timeout_ms == 10 + POLL_ROUND_TRIP_MS  # the fetch wait and its answer

    policy.after_poll(had_records=False, caught_up=True)  # answered: nothing new
    assert consumer.paused_tps == TPS


async def test_a_woken_engine_fetches_no_sooner_than_its_linger_after_its_last_fetch() -> None:
    """Announcements that come while an engine lingers are fetched and applied together."""
    policy, consumer, wakeups = flowing_engine(flowing_fetch_every_s=60.0, linger_s=0.2)
    stop = asyncio.Event()
    polled = asyncio.get_running_loop().time()
    assert await policy.before_poll(stop) is True  # records flow: this poll fetches
    policy.after_poll(had_records=True, caught_up=True)
    assert consumer.paused_tps == TPS

    wakeups._published(None, 0, "orderguard_published", "inventory.events")
    assert await policy.before_poll(stop) is True
    # Held for the linger (a timer may fire a hair early), not fetched at once.
    assert asyncio.get_running_loop().time() - polled >= 0.19
    assert consumer.paused_tps == set()


async def test_an_engine_that_fetched_longer_ago_than_its_linger_fetches_at_once() -> None:
    policy, consumer, wakeups = flowing_engine(flowing_fetch_every_s=60.0, linger_s=60.0)
    stop = asyncio.Event()
    # Its last fetch was never (or a quiet spell ago): nothing to gather.
    policy._rest()

    wakeups._published(None, 0, "orderguard_published", "inventory.events")
    assert await asyncio.wait_for(policy.before_poll(stop), timeout=5) is True
    assert consumer.paused_tps == set()


async def test_a_lingering_engine_stops_at_once_when_told_to() -> None:
    policy, _, wakeups = flowing_engine(flowing_fetch_every_s=60.0, linger_s=60.0)
    stop = asyncio.Event()
    assert await policy.before_poll(stop) is True
    policy.after_poll(had_records=True, caught_up=True)
    wakeups._published(None, 0, "orderguard_published", "inventory.events")

    lingering = asyncio.create_task(policy.before_poll(stop))
    await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(lingering, timeout=5)
