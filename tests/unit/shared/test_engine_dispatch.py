"""One engine (one consumer group) runs several handlers: each gets, in the group's order of
handlers, the events of its own topics and types in partition order; a handler taken over from
its former group gets nothing below its floor; a failure names the handler that failed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import TopicPartition

from orderguard.shared.engine import Engine, Event, RejectEvent
from orderguard.shared.engine.consumer import HandlerFailed
from orderguard.shared.envelope import Envelope

ORDERS, STOCK = "orders.events", "inventory.events"
PLACED, CANCELLED, STOCK_CHANGED = (
    "order.placed.v1",
    "order.cancelled.v1",
    "inventory.stock_changed.v1",
)


class Handler:
    def __init__(
        self, name: str, topics: Sequence[str], types: set[str], fails: Exception | None = None
    ) -> None:
        self.name = name
        self.topics = list(topics)
        self.event_types = frozenset(types)
        self.fails = fails
        self.got: list[list[tuple[str, int, int]]] = []
        self.dropped: list[set[TopicPartition] | None] = []

    async def handle(self, uow: Any, events: list[Event]) -> None:
        uow.calls.append(self.name)
        if self.fails is not None:
            raise self.fails
        self.got.append([(e.topic, e.partition, e.offset) for e in events])

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        self.dropped.append(partitions)


class FakeUnitOfWork:
    def __init__(self) -> None:
        self.calls: list[str] = []


def event(topic: str, event_type: str, partition: int, offset: int) -> Event:
    envelope = Envelope(
        id=f"{topic}-{partition}-{offset}", type=event_type, source="/test", subject="k", data={}
    )
    return Event(envelope, None, topic, partition, offset)  # type: ignore[arg-type]


def engine_of(*handlers: Handler) -> Engine:
    return Engine("svc.worker", handlers, consumer=None, pool=None, schema="s")  # type: ignore[arg-type]


BATCH = [
    event(ORDERS, PLACED, 0, 10),
    event(ORDERS, CANCELLED, 0, 11),
    event(STOCK, STOCK_CHANGED, 0, 3),
    event(ORDERS, PLACED, 1, 7),
    event(STOCK, STOCK_CHANGED, 1, 5),
]


def dispatch(engine: Engine, events: list[Event]) -> FakeUnitOfWork:
    uow = FakeUnitOfWork()
    asyncio.run(engine._dispatch(uow, events))  # type: ignore[arg-type]
    return uow


def test_each_handler_gets_the_events_of_its_topics_and_types_in_partition_order() -> None:
    placements = Handler("svc.placements", [ORDERS], {PLACED})
    orders = Handler("svc.orders", [ORDERS], {PLACED, CANCELLED})
    stock = Handler("svc.stock", [STOCK], {STOCK_CHANGED})
    engine = engine_of(placements, orders, stock)

    uow = dispatch(engine, BATCH)

    assert engine.topics == [ORDERS, STOCK]
    assert engine.event_types == {PLACED, CANCELLED, STOCK_CHANGED}
    assert uow.calls == ["svc.placements", "svc.orders", "svc.stock"]  # the table's order
    assert placements.got == [[(ORDERS, 0, 10), (ORDERS, 1, 7)]]
    assert orders.got == [[(ORDERS, 0, 10), (ORDERS, 0, 11), (ORDERS, 1, 7)]]
    assert stock.got == [[(STOCK, 0, 3), (STOCK, 1, 5)]]


def test_a_handler_with_nothing_in_the_batch_is_not_called() -> None:
    orders = Handler("svc.orders", [ORDERS], {PLACED})
    stock = Handler("svc.stock", [STOCK], {STOCK_CHANGED})
    engine = engine_of(orders, stock)

    uow = dispatch(engine, [event(STOCK, STOCK_CHANGED, 0, 1)])

    assert uow.calls == ["svc.stock"]
    assert orders.got == []


def test_a_lone_handler_gets_the_batch_as_it_is() -> None:
    alone = Handler("svc.alone", [ORDERS, STOCK], {PLACED, CANCELLED, STOCK_CHANGED})
    engine = engine_of(alone)

    dispatch(engine, BATCH)

    assert alone.got == [[(e.topic, e.partition, e.offset) for e in BATCH]]


def test_a_handler_is_not_given_events_below_its_floor_on_a_partition_taken_over() -> None:
    ahead = Handler("svc.ahead", [ORDERS], {PLACED, CANCELLED})
    behind = Handler("svc.behind", [ORDERS], {PLACED, CANCELLED})
    new = Handler("svc.new", [ORDERS], {PLACED, CANCELLED})  # no former group: from the start
    engine = engine_of(ahead, behind, new)
    engine._floors[TopicPartition(ORDERS, 0)] = {"svc.ahead": 11, "svc.behind": 10}
    batch = [
        event(ORDERS, PLACED, 0, 10),
        event(ORDERS, CANCELLED, 0, 11),
        event(ORDERS, PLACED, 1, 7),
    ]

    dispatch(engine, batch)

    assert ahead.got == [[(ORDERS, 0, 11), (ORDERS, 1, 7)]]  # partition 1 has no floor
    assert behind.got == [[(ORDERS, 0, 10), (ORDERS, 0, 11), (ORDERS, 1, 7)]]
    assert new.got == behind.got


def test_a_failing_handler_is_named_and_the_handlers_after_it_are_not_called() -> None:
    first = Handler("svc.first", [ORDERS], {PLACED})
    failing = Handler("svc.failing", [ORDERS], {PLACED}, fails=RuntimeError("boom"))
    last = Handler("svc.last", [ORDERS], {PLACED})
    engine = engine_of(first, failing, last)

    uow = FakeUnitOfWork()
    with pytest.raises(HandlerFailed) as failed:
        asyncio.run(engine._dispatch(uow, BATCH))  # type: ignore[arg-type]

    assert failed.value.handler == "svc.failing"
    assert str(failed.value) == "handler svc.failing failed: RuntimeError('boom')"
    assert uow.calls == ["svc.first", "svc.failing"]


def test_a_rejected_event_stays_a_rejection_that_names_the_handler() -> None:
    rejecting = Handler("svc.rejecting", [ORDERS], {PLACED}, fails=RejectEvent("no such order"))
    engine = engine_of(rejecting)

    with pytest.raises(RejectEvent, match=r"svc\.rejecting rejected: no such order"):
        asyncio.run(engine._dispatch(FakeUnitOfWork(), BATCH))  # type: ignore[arg-type]


def test_a_revoke_reaches_every_handler() -> None:
    orders = Handler("svc.orders", [ORDERS], {PLACED})
    stock = Handler("svc.stock", [STOCK], {STOCK_CHANGED})
    engine = engine_of(orders, stock)
    tp = TopicPartition(ORDERS, 0)
    engine.assigned = {tp}
    engine._floors[tp] = {"svc.orders": 4}

    engine.partitions_revoked({tp})

    assert orders.dropped == stock.dropped == [{tp}]
    assert engine._floors == {}


def test_two_handlers_of_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="two handlers of one name"):
        engine_of(
            Handler("svc.same", [ORDERS], {PLACED}), Handler("svc.same", [STOCK], {STOCK_CHANGED})
        )
