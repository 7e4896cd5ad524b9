"""The engine reports a partition stalled when records wait on it and its applied offset has
not moved for the limit; a caught-up or advancing partition is never stalled."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition

from orderguard.shared.engine import Engine
from orderguard.shared.engine import consumer as consumer_module

TP = TopicPartition("orders.events", 0)


class FakeConsumer:
    def __init__(self) -> None:
        self.highwaters: dict[TopicPartition, int] = {}

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.highwaters.get(tp)


class Handler:
    def __init__(self) -> None:
        self.name = "test.stalls"
        self.topics = ["orders.events"]
        self.event_types = frozenset({"order.placed.v1"})

    async def handle(self, uow, events):  # type: ignore[no-untyped-def]
        pass

    def drop_cached_state(self, partitions):  # type: ignore[no-untyped-def]
        pass


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(consumer_module, "time", SimpleNamespace(monotonic=lambda: clock.now))
    return clock


def engine_owning(consumer: FakeConsumer) -> Engine:
    engine = Engine("test.stalls", [Handler()], consumer, pool=None, schema="s")  # type: ignore[arg-type]
    engine.assigned = {TP}
    return engine


def test_a_partition_with_records_waiting_and_no_progress_is_stalled(clock) -> None:  # type: ignore[no-untyped-def]
    consumer = FakeConsumer()
    engine = engine_owning(consumer)
    engine._positions[TP] = 10
    consumer.highwaters[TP] = 50
    engine._note_progress()
    clock.now += 59
    engine._note_progress()
    assert engine.stalled_partitions(60) == []
    clock.now += 2
    engine._note_progress()
    assert engine.stalled_partitions(60) == [TP]


def test_advancing_or_caught_up_partitions_are_not_stalled(clock) -> None:  # type: ignore[no-untyped-def]
    consumer = FakeConsumer()
    engine = engine_owning(consumer)
    engine._positions[TP] = 10
    consumer.highwaters[TP] = 50
    engine._note_progress()
    for position in (20, 30, 40):
        clock.now += 45
        engine._positions[TP] = position
        engine._note_progress()
        assert engine.stalled_partitions(60) == []
    engine._positions[TP] = 50  # caught up: idle is not stalled
    engine._note_progress()
    clock.now += 3600
    engine._note_progress()
    assert engine.stalled_partitions(60) == []


def test_a_revoked_partition_is_not_reported(clock) -> None:  # type: ignore[no-untyped-def]
    consumer = FakeConsumer()
    engine = engine_owning(consumer)
    engine._positions[TP] = 0
    consumer.highwaters[TP] = 5
    engine._note_progress()
    clock.now += 120
    assert engine.stalled_partitions(60) == [TP]
    engine.partitions_revoked({TP})
    assert engine.stalled_partitions(60) == []
