"""Events the inventory service publishes on `inventory.events` (key: SKU for stock, order id for reservations)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from orderguard.shared.events.registry import event_type


@event_type("inventory.stock_changed.v1")
class StockChanged(BaseModel):
    """A SKU's stock level after a change: what the low-stock detector watches."""

    sku: str
    warehouse: str
    on_hand: int
    reserved: int
    available: int
    low_stock_threshold: int | None = Field(
        default=None, description="The SKU's own threshold; None means the configured default"
    )
    cause: Literal["stock_set", "reserved", "released", "committed", "adjusted"]
    order_id: str | None = None


class ReservedLine(BaseModel):
    sku: str
    warehouse: str
    quantity: int = Field(gt=0)


class Shortage(BaseModel):
    sku: str
    warehouse: str
    requested: int
    available: int


@event_type("inventory.reserved.v1")
class StockReserved(BaseModel):
    order_id: str
    lines: list[ReservedLine]


@event_type("inventory.reservation_failed.v1")
class ReservationFailed(BaseModel):
    order_id: str
    shortages: list[Shortage] = Field(min_length=1)


@event_type("inventory.released.v1")
class ReservationReleased(BaseModel):
    order_id: str
    lines: list[ReservedLine]
    reason: str
