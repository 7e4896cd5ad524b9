"""The engine tells a deadline sweeper which owned partitions hold records it has not applied
(position below the high watermark of their last fetch), so their clocks wait for those
records' event times instead of taking the wait for silence."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from orderguard.shared.engine import Engine

CAUGHT_UP = TopicPartition("logistics.events", 0)
BACKLOG = TopicPartition("logistics.events", 1)
NEVER_FETCHED = TopicPartition("logistics.events", 2)


class FakeConsumer:
    def __init__(self, highwaters: dict[TopicPartition, int]) -> None:
        self.highwaters = highwaters

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.highwaters.get(tp)


class Sweeper:
    """Records what the engine tells it; nothing is ever due (no transaction is opened)."""

    name = "logistics.detector.test"
    topics = ("logistics.events",)
    event_types = frozenset({"shipment.scanned.v1"})

    def __init__(self) -> None:
        self.told: list[tuple[set[TopicPartition], set[TopicPartition], set[TopicPartition]]] = []

    async def handle(self, uow, events):  # type: ignore[no-untyped-def]
        pass

    def drop_cached_state(self, partitions):  # type: ignore[no-untyped-def]
        pass

    def deadlines_due(
        self,
        owned: set[TopicPartition],
        polled: set[TopicPartition],
        behind: set[TopicPartition],
    ) -> set[TopicPartition]:
        self.told.append((owned, polled, behind))
        return set()

    async def sweep(self, uow, partitions):  # type: ignore[no-untyped-def]
        raise AssertionError("nothing is due")


def test_the_sweeper_learns_which_owned_partitions_have_records_waiting() -> None:
    sweeper = Sweeper()
    consumer = FakeConsumer({CAUGHT_UP: 40, BACKLOG: 900})
    engine = Engine(sweeper.name, [sweeper], consumer, pool=None, schema="s")  # type: ignore[arg-type]
    engine.assigned = {CAUGHT_UP, BACKLOG, NEVER_FETCHED}
    engine._positions.update({CAUGHT_UP: 40, BACKLOG: 120, NEVER_FETCHED: 0})
    asyncio.run(engine._sweep_due(polled={CAUGHT_UP}))
    [(owned, polled, behind)] = sweeper.told
    assert owned == {CAUGHT_UP, BACKLOG, NEVER_FETCHED}
    assert polled == {CAUGHT_UP}
    # no fetch yet, no high watermark: nothing is known to wait (the idle timer decides)
    assert behind == {BACKLOG}


class OtherTopicSweeper(Sweeper):
    name = "inventory.detector.test"
    topics = ("inventory.events",)


def test_each_sweeper_of_a_group_is_told_only_the_partitions_of_its_topics() -> None:
    logistics, inventory = Sweeper(), OtherTopicSweeper()
    stock = TopicPartition("inventory.events", 0)
    consumer = FakeConsumer({CAUGHT_UP: 40, BACKLOG: 900, stock: 10})
    engine = Engine(
        "svc.worker",
        [logistics, inventory],
        consumer,  # type: ignore[arg-type]
        pool=None,  # type: ignore[arg-type]
        schema="s",
    )
    engine.assigned = {CAUGHT_UP, BACKLOG, stock}
    engine._positions.update({CAUGHT_UP: 40, BACKLOG: 120, stock: 3})
    asyncio.run(engine._sweep_due(polled={CAUGHT_UP, stock}))
    assert logistics.told == [({CAUGHT_UP, BACKLOG}, {CAUGHT_UP}, {BACKLOG})]
    assert inventory.told == [({stock}, {stock}, {stock})]
