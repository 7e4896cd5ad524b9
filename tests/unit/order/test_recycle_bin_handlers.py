"""Recycle bin use cases on an in-memory unit of work: the events, the entries and the order
timeline each move produces."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from inmemory import NOW, InMemoryUnitOfWork, one
from inmemory.order import OrderRepository
from inmemory.recycle_bin import RecycleBinRepository

from orderguard.services.order.domain import Actor
from orderguard.services.order.recycle_bin import handlers
from orderguard.services.order.recycle_bin.domain import (
    BinState,
    Category,
    MoveOutcome,
    OrderFacts,
    case_cause,
    manual_cause,
    refund_cause,
)
from orderguard.shared.errors import IllegalTransition
from orderguard.shared.events import recycle_bin as events

TOPIC = "orders.events"
OPERATOR = Actor("operator", "ops-1")
CONSUMER = Actor("consumer", "order.recycle-bin.aftersales")
DAY = timedelta(days=1)


@pytest.fixture
def bin_repo(monkeypatch: pytest.MonkeyPatch) -> RecycleBinRepository:
    fake = RecycleBinRepository()
    fake.orders["o-1"] = OrderFacts("o-1", "paid", "web", Decimal("99.00"))
    monkeypatch.setattr(handlers, "repository", fake)
    return fake


@pytest.fixture
def orders(monkeypatch: pytest.MonkeyPatch) -> OrderRepository:
    fake = OrderRepository()
    monkeypatch.setattr(handlers, "orders", fake)
    return fake


async def move_for_refund(uow: InMemoryUnitOfWork) -> handlers.Moved:
    cause = refund_cause("rf-1", "case-1", Decimal("10.00"), "chipped", CONSUMER, uow.now)
    return await handlers.move(uow, TOPIC, OrderFacts("o-1", "paid", "web", Decimal("99")), cause)


async def test_a_refund_moves_the_order_in_once_and_a_case_adds_its_reason(
    bin_repo: RecycleBinRepository, orders: OrderRepository
) -> None:
    uow = InMemoryUnitOfWork()
    moved = await move_for_refund(uow)

    assert moved.outcome is MoveOutcome.MOVED
    recycled = one(uow.events(events.OrderRecycled))
    assert (recycled.category, recycled.case_id, recycled.reason) == (
        "refund",
        "case-1",
        "refund 10.00 issued: chipped",
    )
    [entry] = orders.timelines["o-1"]
    assert (entry.what, entry.event_type, entry.event_id) == (
        "moved_to_recycle_bin",
        "order.recycled.v1",
        uow.published[0][1].id,
    )

    again = InMemoryUnitOfWork()
    assert (await move_for_refund(again)).outcome is MoveOutcome.ALREADY
    assert again.types() == []

    case = InMemoryUnitOfWork()
    cause = case_cause("case-1", Category.RETURN, "broken", CONSUMER, NOW)
    added = await handlers.move(case, TOPIC, bin_repo.orders["o-1"], cause)
    assert added.outcome is MoveOutcome.REASON_ADDED
    assert case.types() == []  # the entry's history grows; no move to announce
    assert [e.what for e in orders.timelines["o-1"]][-1] == "recycle_bin_reason_added"
    assert len(bin_repo.causes) == 2


async def test_restoring_publishes_order_restored_with_the_orders_status(
    bin_repo: RecycleBinRepository, orders: OrderRepository
) -> None:
    cause = manual_cause(Category.DELETED_BY_MISTAKE, "oops", OPERATOR, NOW)
    await handlers.move_by_hand(InMemoryUnitOfWork(), TOPIC, "o-1", cause)
    bin_repo.orders["o-1"] = OrderFacts("o-1", "shipped", "web", Decimal("99.00"))

    uow = InMemoryUnitOfWork(NOW + DAY)
    entry = await handlers.restore(uow, TOPIC, "o-1", OPERATOR, "found it")
    restored = one(uow.events(events.OrderRestored))
    assert (restored.order_status, restored.restored_by, restored.reason) == (
        "shipped",
        "operator:ops-1",
        "found it",
    )
    assert bin_repo.entries[entry.entry_id].state is BinState.RESTORED
    assert orders.timelines["o-1"][-1].event_type == "order.restored.v1"

    with pytest.raises(handlers.NotInRecycleBin):
        await handlers.restore(InMemoryUnitOfWork(), TOPIC, "o-1", OPERATOR, None)
    with pytest.raises(handlers.OrderNotFound):
        await handlers.move_by_hand(InMemoryUnitOfWork(), TOPIC, "o-nope", cause)


async def test_a_closed_case_archives_and_retention_purges(
    bin_repo: RecycleBinRepository, orders: OrderRepository
) -> None:
    await move_for_refund(InMemoryUnitOfWork())
    close = InMemoryUnitOfWork(NOW + DAY)
    assert (
        await handlers.archive_for_closed_case(close, TOPIC, "case-1", "o-1", "refunded", CONSUMER)
        == 1
    )
    archived = one(close.events(events.OrderArchived))
    assert (archived.case_id, archived.reason) == ("case-1", "case case-1 closed: refunded")

    early = InMemoryUnitOfWork(NOW + 10 * DAY)
    assert await handlers.purge_past_retention(early, TOPIC, 30 * 86400, 10) == 0
    late = InMemoryUnitOfWork(NOW + 40 * DAY)
    assert await handlers.purge_past_retention(late, TOPIC, 30 * 86400, 10) == 1
    purged = one(late.events(events.OrderPurged))
    assert "phone" in purged.purged_fields
    assert bin_repo.purged == [("o-1", tuple(purged.purged_fields))]
    assert [e.what for e in orders.timelines["o-1"]] == [
        "moved_to_recycle_bin",
        "archived_in_recycle_bin",
        "personal_data_purged",
    ]
    [entry] = bin_repo.entries.values()
    with pytest.raises(IllegalTransition):
        entry.restore(OPERATOR, None, NOW)


async def test_quiet_entries_without_a_case_are_archived(
    bin_repo: RecycleBinRepository, orders: OrderRepository
) -> None:
    cause = manual_cause(Category.HELD, "look later", OPERATOR, NOW)
    await handlers.move_by_hand(InMemoryUnitOfWork(), TOPIC, "o-1", cause)
    uow = InMemoryUnitOfWork(NOW + 8 * DAY)
    assert await handlers.archive_quiet_entries(uow, TOPIC, 7 * 86400, 10) == 1
    assert one(uow.events(events.OrderArchived)).archived_by == "rule:recycle-bin.quiet-period"
