"""A batch of records none of the group's handlers applies (their `ce_type` a known type it does
not want: a worker reads a topic for a few of its types) is passed over without a transaction:
counted as skipped, its offsets kept to store later. Anything else still goes the transactional
path, where the body is read (a record without a type header, an unknown type, one wanted
record among the others, a partition taken over from former groups). Such records, once read to
the end, do not count as records flowing for the engine's idle fetching; a backlog of them does."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from orderguard.shared import metrics
from orderguard.shared.engine import Engine

ORDERS = "orders.events"
WANTED, NOT_OURS = "order.cancelled.v1", "order.placed.v1"
GROUP = "svc.passes"


class Handler:
    name = "svc.cancellations"
    topics = (ORDERS,)
    event_types = frozenset({WANTED})

    async def handle(self, uow: Any, events: list[Any]) -> None:
        raise AssertionError("nothing here is for this handler")

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        pass


class TransactionOpened(Exception):
    pass


class Pool:
    """A pool that fails the test's batch the moment a transaction is asked for."""

    def acquire(self) -> None:
        raise TransactionOpened


def record(partition: int, offset: int, event_type: bytes | None) -> ConsumerRecord[Any, Any]:
    headers = [("ce_type", event_type)] if event_type is not None else []
    return ConsumerRecord(ORDERS, partition, offset, 0, 0, None, b"{}", None, 0, 2, headers)


class Consumer:
    def __init__(self, highwater: int) -> None:
        self._highwater = highwater

    def highwater(self, tp: TopicPartition) -> int:
        return self._highwater


def engine(highwater: int = 0) -> Engine:
    return Engine(GROUP, [Handler()], Consumer(highwater), Pool(), "s")  # type: ignore[arg-type]


def skipped_so_far() -> float:
    return metrics.EVENTS_CONSUMED.labels(ORDERS, GROUP, "skipped")._value.get()


def test_a_batch_of_records_not_ours_opens_no_transaction_and_keeps_its_offsets() -> None:
    passing = engine()
    before = skipped_so_far()
    batch = [record(0, 4, NOT_OURS.encode()), record(0, 5, NOT_OURS.encode())]
    batch.append(record(2, 9, NOT_OURS.encode()))

    next_offsets = asyncio.run(passing._apply(batch))

    expected = {TopicPartition(ORDERS, 0): 6, TopicPartition(ORDERS, 2): 10}
    assert next_offsets == expected
    assert passing._unstored == expected
    assert skipped_so_far() - before == 3


@pytest.mark.parametrize(
    "last_type",
    [WANTED.encode(), None, b"order.unheard_of.v1"],
    ids=["one wanted record", "no type header", "an unknown type"],
)
def test_a_batch_with_a_record_whose_body_must_be_read_is_applied_in_a_transaction(
    last_type: bytes | None,
) -> None:
    batch = [record(0, 4, NOT_OURS.encode()), record(0, 5, last_type)]

    with pytest.raises(TransactionOpened):
        asyncio.run(engine()._apply(batch))


def test_a_partition_taken_over_from_former_groups_goes_the_transactional_path() -> None:
    taking_over = engine()
    taking_over._floors[TopicPartition(ORDERS, 0)] = {Handler.name: 3}

    with pytest.raises(TransactionOpened):
        asyncio.run(taking_over._apply([record(0, 4, NOT_OURS.encode())]))


def test_offsets_kept_for_a_revoked_partition_are_forgotten() -> None:
    passing = engine()
    mine, revoked = TopicPartition(ORDERS, 0), TopicPartition(ORDERS, 1)
    passing.assigned = {mine, revoked}
    asyncio.run(passing._apply([record(0, 4, NOT_OURS.encode()), record(1, 7, NOT_OURS.encode())]))

    passing.partitions_revoked({revoked})

    assert passing._unstored == {mine: 5}


@pytest.mark.parametrize(
    ("records", "highwater", "flowing"),
    [
        ([record(0, 4, NOT_OURS.encode())], 5, False),  # read past, to the end
        ([record(0, 4, NOT_OURS.encode())], 900, True),  # a backlog: read on without rest
        ([record(0, 4, NOT_OURS.encode()), record(0, 5, WANTED.encode())], 6, True),
        ([], 5, False),
    ],
    ids=["not ours, at the end", "not ours, a backlog", "one of ours", "nothing"],
)
def test_records_only_read_past_do_not_count_as_flowing_once_read_to_the_end(
    records: list[ConsumerRecord[Any, Any]], highwater: int, flowing: bool
) -> None:
    polled = engine(highwater)
    batches = {TopicPartition(ORDERS, 0): records} if records else {}

    read_to_end = polled._read_to_end(batches, len(records))

    assert polled._flowing(records, read_to_end) is flowing


class FailingOnce:
    """A pool whose first transaction fails; it records the statements of the later ones."""

    def __init__(self) -> None:
        self.failures = 1
        self.statements: list[tuple[Any, ...]] = []

    def acquire(self) -> FailingOnce:
        return self

    def transaction(self) -> FailingOnce:
        return self

    async def __aenter__(self) -> FailingOnce:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("could not serialize access")
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def execute(self, statement: str, *args: Any) -> None:
        self.statements.append(args)


def test_offsets_a_failed_store_kept_are_stored_at_the_next_store() -> None:
    """Meanwhile nothing depends on them (read again, they are skipped again); the engine's next
    store of pending offsets stores them, even with no applied offsets pending beside them."""
    pool = FailingOnce()
    passing = Engine(GROUP, [Handler()], Consumer(0), pool, "s")  # type: ignore[arg-type]
    tp = TopicPartition(ORDERS, 0)
    passing.assigned = {tp}
    asyncio.run(passing._apply([record(0, 4, NOT_OURS.encode())]))

    asyncio.run(passing._store_pending(stopped=True))  # the transaction fails
    assert passing._unstored == {tp: 5} and pool.statements == []

    asyncio.run(passing._store_pending(stopped=True))
    assert passing._unstored == {}
    assert (GROUP, [ORDERS], [0], [5]) in pool.statements
