"""The inventory batch use case on an in-memory unit of work and repository: what reserving,
committing and releasing stock publish and store, batch after batch."""

from __future__ import annotations

from datetime import timedelta

import pytest
from inmemory import NOW, InMemoryUnitOfWork, incoming
from inmemory.inventory import InventoryRepository
from testkit import cancelled, placed

from orderguard.services.inventory import handlers
from orderguard.services.inventory.domain import StockLevel
from orderguard.services.inventory.rules import UnknownReservation
from orderguard.shared.detection.config import RuleConfig
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.events.inventory import (
    ReservationFailed,
    ReservationReleased,
    StockChanged,
    StockCommitted,
    StockReserved,
)
from orderguard.shared.events.orders import OrderShipped
from orderguard.shared.events.registry import REGISTRY
from orderguard.shared.topics import Topics

TOPICS = Topics()
UNKNOWN = UnknownReservation(RuleConfig.of(UnknownReservation))
TRACE = "00-" + "c" * 32 + "-" + "d" * 16 + "-01"


@pytest.fixture
def repo(monkeypatch: pytest.MonkeyPatch) -> InventoryRepository:
    fake = InventoryRepository()
    fake.levels[("SKU-1", "main")] = StockLevel("SKU-1", "main", on_hand=10)
    monkeypatch.setattr(handlers, "repository", fake)
    return fake


def event(envelope: Envelope) -> Event:
    traced = envelope.model_copy(update={"traceparent": TRACE})
    return Event(traced, REGISTRY.parse(traced), "orders.events", 0, 0)


def shipped(order_id: str) -> Event:
    data = OrderShipped(
        order_id=order_id,
        shipment_id="shp-1",
        carrier="sf-express",
        tracking_number="SF1",
        shipped_at=NOW,
    )
    return incoming(data, order_id, traceparent=TRACE)


async def batch(*events: Event) -> InMemoryUnitOfWork:
    uow = InMemoryUnitOfWork(NOW + timedelta(minutes=1))
    await handlers.reserve_stock_for_orders(uow, TOPICS, UNKNOWN, list(events))
    return uow


async def test_reserving_publishes_the_change_and_the_reservation_in_the_cause_trace(
    repo: InventoryRepository,
) -> None:
    uow = await batch(event(placed("o-1", "SKU-1", 3)))

    assert uow.types() == ["inventory.stock_changed.v1", "inventory.reserved.v1"]
    [change] = uow.events(StockChanged)
    assert (change.on_hand, change.reserved, change.available, change.cause) == (
        10,
        3,
        7,
        "reserved",
    )
    [reserved] = uow.events(StockReserved)
    assert [(ln.sku, ln.quantity) for ln in reserved.lines] == [("SKU-1", 3)]
    assert all(e.traceparent.split("-")[1] == "c" * 32 for _, e in uow.published)  # type: ignore[union-attr]
    assert repo.levels[("SKU-1", "main")].reserved == 3
    assert [e.movement for e in repo.ledger] == ["reserved"]
    assert repo.reservations[("o-1", "SKU-1", "main")].state == "held"


async def test_the_same_order_in_a_later_batch_is_not_reserved_twice(
    repo: InventoryRepository,
) -> None:
    await batch(event(placed("o-1", "SKU-1", 3)))
    again = await batch(event(placed("o-1", "SKU-1", 3)))
    assert again.types() == []
    assert repo.levels[("SKU-1", "main")].reserved == 3


async def test_a_shortage_fails_the_whole_reservation(repo: InventoryRepository) -> None:
    uow = await batch(event(placed("o-2", "SKU-1", 11)))
    [failed] = uow.events(ReservationFailed)
    assert [(s.requested, s.available) for s in failed.shortages] == [(11, 10)]
    assert uow.types() == ["inventory.reservation_failed.v1"]
    assert repo.levels[("SKU-1", "main")].reserved == 0 and repo.ledger == []


async def test_shipping_commits_and_cancelling_releases_once(repo: InventoryRepository) -> None:
    await batch(event(placed("o-1", "SKU-1", 3)), event(placed("o-2", "SKU-1", 2)))
    uow = await batch(shipped("o-1"), event(cancelled("o-2")), event(cancelled("o-2")))

    [committed] = uow.events(StockCommitted)
    assert (committed.order_id, committed.committed_at) == ("o-1", uow.now)
    [released] = uow.events(ReservationReleased)
    assert (released.order_id, released.reason) == ("o-2", "changed mind")
    level = repo.levels[("SKU-1", "main")]
    assert (level.on_hand, level.reserved) == (7, 0)
    assert [e.movement for e in repo.ledger] == ["reserved", "reserved", "committed", "released"]
    assert repo.reservations[("o-1", "SKU-1", "main")].state == "committed"
    assert repo.reservations[("o-2", "SKU-1", "main")].state == "released"


async def test_a_commit_without_a_reservation_is_an_anomaly_in_the_cause_trace(
    repo: InventoryRepository,
) -> None:
    uow = await batch(shipped("ghost"))

    [(topic, envelope)] = uow.published
    assert (topic, envelope.type, envelope.source) == (
        TOPICS.anomalies,
        "anomaly.detected.v1",
        handlers.CONSUMER_SOURCE,
    )
    anomaly = AnomalyDetected.model_validate(envelope.data)
    assert (anomaly.rule, anomaly.labels["found"]) == ("inventory.unknown_reservation", "none")
    assert envelope.subject == anomaly.fingerprint and envelope.time == uow.now
    assert envelope.traceparent and envelope.traceparent.split("-")[1] == "c" * 32
