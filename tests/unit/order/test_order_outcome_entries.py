"""How inventory events read on an order's timeline. Pure mapping, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from orderguard.services.order.domain import Actor
from orderguard.services.order.handlers import inventory_outcome
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.inventory import (
    ReservationFailed,
    ReservationReleased,
    ReservedLine,
    Shortage,
    StockChanged,
    StockReserved,
)

AT = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
CONSUMER = Actor("consumer", "order.inventory-outcomes")


def event(event_type: str, data: BaseModel) -> Event:
    envelope = Envelope(
        id="evt-1",
        type=event_type,
        source="/orderguard/inventory",
        subject="ord_1",
        time=AT,
        data=data.model_dump(mode="json"),
    )
    return Event(envelope, data, "inventory.events", 0, 7)


def test_reserved() -> None:
    lines = [ReservedLine(sku="A", warehouse="main", quantity=2)]
    order_id, entry = inventory_outcome(
        event("inventory.reserved.v1", StockReserved(order_id="ord_1", lines=lines)), CONSUMER
    )
    assert order_id == "ord_1"
    assert (entry.what, entry.at, entry.actor) == ("stock_reserved", AT, CONSUMER)
    assert (entry.event_type, entry.event_id) == ("inventory.reserved.v1", "evt-1")
    assert entry.details == {"lines": [{"sku": "A", "warehouse": "main", "quantity": 2}]}
    assert entry.from_state is entry.to_state is None  # the status is not touched


def test_reservation_failed_carries_the_shortages() -> None:
    shortages = [
        Shortage(sku="A", warehouse="main", requested=5, available=1),
        Shortage(sku="B", warehouse="main", requested=1, available=0),
    ]
    _, entry = inventory_outcome(
        event(
            "inventory.reservation_failed.v1",
            ReservationFailed(order_id="ord_1", shortages=shortages),
        ),
        CONSUMER,
    )
    assert entry.what == "stock_reservation_failed"
    assert entry.note == "not enough stock for A@main, B@main"
    assert entry.details["shortages"][0] == {
        "sku": "A",
        "warehouse": "main",
        "requested": 5,
        "available": 1,
    }
    assert entry.to_state is None


def test_released_keeps_the_reason() -> None:
    released = ReservationReleased(order_id="ord_1", lines=[], reason="customer cancelled")
    _, entry = inventory_outcome(event("inventory.released.v1", released), CONSUMER)
    assert (entry.what, entry.note) == ("stock_released", "customer cancelled")


def test_other_inventory_events_are_not_outcomes() -> None:
    changed = StockChanged(
        sku="A", warehouse="main", on_hand=1, reserved=0, available=1, cause="stock_set"
    )
    with pytest.raises(TypeError):
        inventory_outcome(event("inventory.stock_changed.v1", changed), CONSUMER)
