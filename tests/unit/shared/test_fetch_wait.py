"""An engine that a fetch answered with a partition's high watermark but none of its records
(Tansu, when listing a long partition outlasts the fetch's wait) knows records wait there: it
does not rest, and its next fetches wait long enough for the broker to find them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError
from aiokafka.structs import ConsumerRecord

from orderguard.shared.engine import Engine
from orderguard.shared.engine import consumer as consumer_module
from orderguard.shared.kafka import BEHIND_FETCH_WAIT_MS, FetchWait

TOPIC = "inventory.events"
ANSWERED, UNANSWERED, HELD = (TopicPartition(TOPIC, p) for p in range(3))


class Handler:
    name = "inventory.worker"
    topics = (TOPIC,)
    event_types = frozenset({"inventory.stock_changed.v1"})


class Consumer:
    def __init__(self, highwaters: dict[TopicPartition, int]) -> None:
        self.highwaters = highwaters

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.highwaters.get(tp)


def records(tp: TopicPartition, *offsets: int) -> list[ConsumerRecord[Any, Any]]:
    return [
        ConsumerRecord(tp.topic, tp.partition, o, 0, 0, None, b"", None, 0, 0, ()) for o in offsets
    ]


def owning(highwaters: dict[TopicPartition, int], positions: dict[TopicPartition, int]) -> Engine:
    engine = Engine(Handler.name, [Handler()], Consumer(highwaters), None, "s", batch_max=100)  # type: ignore[arg-type, list-item]
    engine.assigned = set(positions)
    engine._positions.update(positions)
    return engine


def test_a_partition_answered_without_its_records_is_not_read_to_its_end() -> None:
    engine = owning({ANSWERED: 10, UNANSWERED: 5_000}, {ANSWERED: 8, UNANSWERED: 4_990})

    assert not engine._read_to_end({ANSWERED: records(ANSWERED, 8, 9)}, 2)


def test_an_engine_whose_partitions_end_where_it_stands_has_read_to_the_end() -> None:
    engine = owning({ANSWERED: 10, UNANSWERED: 4_990}, {ANSWERED: 8, UNANSWERED: 4_990})

    assert engine._read_to_end({ANSWERED: records(ANSWERED, 8, 9)}, 2)
    assert owning({ANSWERED: 10}, {ANSWERED: 10})._read_to_end({}, 0)


def test_a_partition_held_for_a_take_over_does_not_count_as_waiting() -> None:
    """Held partitions are paused (their former group still runs): not fetched, not waited on."""
    engine = owning({ANSWERED: 10, HELD: 900}, {ANSWERED: 10, HELD: 0})
    engine._held = {HELD}

    assert engine._read_to_end({}, 0)


class Fetcher:
    _fetch_max_wait_ms = 10


class StartedConsumer:
    """The two attributes of aiokafka's consumer FetchWait sets and reads."""

    def __init__(self, wait_ms: int) -> None:
        self._fetch_max_wait_ms = wait_ms
        self._fetcher: Fetcher | None = Fetcher()


def test_fetches_wait_long_while_behind_and_as_configured_once_read_to_the_end() -> None:
    consumer = StartedConsumer(10)
    wait = FetchWait(consumer)  # type: ignore[arg-type]
    assert consumer._fetcher is not None

    wait.follow(records_wait=True, full_poll=False)
    assert consumer._fetcher._fetch_max_wait_ms == BEHIND_FETCH_WAIT_MS
    wait.follow(records_wait=False, full_poll=False)
    assert consumer._fetcher._fetch_max_wait_ms == 10


def test_after_a_full_poll_fetches_keep_the_configured_wait() -> None:
    """aiokafka may still hold records after a full poll; its next fetch asks only for the
    partitions it holds none of, perhaps all read to their end, and would be held for the whole
    long wait with every other partition's fetch behind it."""
    consumer = StartedConsumer(10)
    wait = FetchWait(consumer)  # type: ignore[arg-type]
    assert consumer._fetcher is not None

    wait.follow(records_wait=True, full_poll=True)
    assert consumer._fetcher._fetch_max_wait_ms == 10
    wait.follow(records_wait=True, full_poll=False)
    wait.follow(records_wait=True, full_poll=True)
    assert consumer._fetcher._fetch_max_wait_ms == 10


def test_a_configured_wait_longer_than_the_behind_wait_is_kept() -> None:
    consumer = StartedConsumer(5_000)
    wait = FetchWait(consumer)  # type: ignore[arg-type]
    assert consumer._fetcher is not None

    wait.follow(records_wait=True, full_poll=False)
    assert consumer._fetcher._fetch_max_wait_ms == 5_000


def test_a_consumer_not_started_yet_is_left_alone() -> None:
    consumer = StartedConsumer(10)
    consumer._fetcher = None
    wait = FetchWait(consumer)  # type: ignore[arg-type]

    wait.follow(records_wait=True, full_poll=False)  # no fetcher yet: nothing raised
    consumer._fetcher = Fetcher()
    wait.follow(records_wait=True, full_poll=False)
    assert consumer._fetcher._fetch_max_wait_ms == BEHIND_FETCH_WAIT_MS


class PositionedConsumer(Consumer):
    """Where each partition's fetches start, as aiokafka answers `position()`: a number, an
    answer that never comes (no broker yet), or revoked."""

    def __init__(self, positions: dict[TopicPartition, int | Exception | None]) -> None:
        super().__init__({})
        self.positions = positions

    async def position(self, tp: TopicPartition) -> int:
        answer = self.positions[tp]
        if isinstance(answer, Exception):
            raise answer
        if answer is None:
            await asyncio.Event().wait()
        assert isinstance(answer, int)
        return answer


async def test_partitions_without_a_stored_offset_learn_where_their_fetches_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """So a partition the broker answers without records before any was applied counts as
    waiting; a partition whose start is not known yet is asked again, without holding the loop."""
    monkeypatch.setattr(consumer_module, "POSITION_TIMEOUT_S", 0.01)
    stored, unknown, revoked = ANSWERED, UNANSWERED, HELD
    kafka = PositionedConsumer({unknown: 0, revoked: IllegalStateError(), stored: None})
    engine = Engine(Handler.name, [Handler()], kafka, None, "s")  # type: ignore[arg-type, list-item]
    engine.assigned = {stored, unknown, revoked}
    engine._positions[stored] = 4_990  # sought to its stored offset on assignment

    await engine._learn_positions({unknown, revoked})

    assert engine._positions == {stored: 4_990, unknown: 0}
    del engine._positions[stored]
    await engine._learn_positions({stored})  # never answered: left for the next turn of the loop
    assert stored not in engine._positions
