"""Events the inventory service publishes on `inventory.events` (key: SKU for stock, order id for reservations)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orderguard.shared.events.registry import event_type

# Kinds of stock movement, each a row of the stock ledger.
Movement = Literal["stock_set", "received", "reserved", "released", "committed", "adjusted"]


@event_type("inventory.stock_changed.v1")
class StockChanged(BaseModel):
    """A SKU's stock level after a change: what the low-stock detector watches."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "sku": "MUG-RED-350",
                    "warehouse": "main",
                    "on_hand": 12,
                    "reserved": 4,
                    "available": 8,
                    "low_stock_threshold": 10,
                    "cause": "reserved",
                    "order_id": "ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9",
                    "movement": "reserved",
                }
            ]
        }
    )

    sku: str = Field(description="The SKU; also the event's subject and Kafka key")
    warehouse: str
    on_hand: int = Field(description="Units physically in the warehouse")
    reserved: int = Field(description="Units held for placed orders")
    available: int = Field(description="on_hand - reserved: what new orders can reserve")
    low_stock_threshold: int | None = Field(
        default=None, description="The SKU's own threshold; None means the configured default"
    )
    cause: Literal["stock_set", "reserved", "released", "committed", "adjusted"]
    order_id: str | None = Field(
        default=None, description="The order that caused the change, when one did"
    )
    movement: Movement | None = Field(
        default=None,
        description=(
            "The ledger movement behind the change (finer than `cause`: a receipt is"
            " `received` with cause `stock_set`); None when nothing moved (a new threshold)"
            " or from publishers that keep no ledger"
        ),
    )


class ReservedLine(BaseModel):
    """Units of one SKU held in one warehouse for an order."""

    sku: str
    warehouse: str
    quantity: int = Field(gt=0)


class Shortage(BaseModel):
    """A SKU that could not be reserved: how many were wanted and how many were available."""

    sku: str
    warehouse: str
    requested: int
    available: int


@event_type("inventory.reserved.v1")
class StockReserved(BaseModel):
    """Every line of an order was reserved."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9",
                    "lines": [
                        {"sku": "MUG-RED-350", "warehouse": "main", "quantity": 2},
                        {"sku": "TEA-OOLONG-100G", "warehouse": "main", "quantity": 1},
                    ],
                }
            ]
        }
    )

    order_id: str = Field(description="The order's id; also the event's subject and Kafka key")
    lines: list[ReservedLine]


@event_type("inventory.reservation_failed.v1")
class ReservationFailed(BaseModel):
    """An order could not be reserved (all or nothing): nothing is held for it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9",
                    "shortages": [
                        {"sku": "MUG-RED-350", "warehouse": "main", "requested": 2, "available": 1}
                    ],
                }
            ]
        }
    )

    order_id: str = Field(description="The order's id; also the event's subject and Kafka key")
    shortages: list[Shortage] = Field(min_length=1)


@event_type("inventory.released.v1")
class ReservationReleased(BaseModel):
    """What was held for an order was released (the order was cancelled)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9",
                    "lines": [{"sku": "MUG-RED-350", "warehouse": "main", "quantity": 2}],
                    "reason": "customer changed their mind",
                }
            ]
        }
    )

    order_id: str = Field(description="The order's id; also the event's subject and Kafka key")
    lines: list[ReservedLine]
    reason: str = Field(description="Why it was released: the cancellation's reason")


@event_type("inventory.committed.v1")
class StockCommitted(BaseModel):
    """An order shipped: what was held for it left the warehouse (on hand and reserved both
    dropped by these quantities). Once per order."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9",
                    "shipment_id": "shp_01KAQ6B1C2D3E4F5G6H7J8K9M0",
                    "lines": [
                        {"sku": "MUG-RED-350", "warehouse": "main", "quantity": 2},
                        {"sku": "TEA-OOLONG-100G", "warehouse": "main", "quantity": 1},
                    ],
                    "committed_at": "2026-11-22T15:00:01Z",
                }
            ]
        }
    )

    order_id: str = Field(description="The order's id; also the event's subject and Kafka key")
    shipment_id: str = Field(description="The shipment that took the goods (from order.shipped)")
    lines: list[ReservedLine] = Field(min_length=1)
    committed_at: datetime


@event_type("inventory.counted.v1")
class StockCounted(BaseModel):
    """Someone counted a SKU in a warehouse; on hand was adjusted to the count.

    Carries what the count is checked against, all read before the adjustment in the same
    transaction: the running balance of the stock row and the sums of the stock ledger.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "count_id": "cnt_7b0e6a4c2f5d4a1e9c3b8d2f1a0e5c7b",
                    "sku": "MUG-RED-350",
                    "warehouse": "main",
                    "counted_on_hand": 9,
                    "expected_on_hand": 12,
                    "ledger_on_hand": 12,
                    "reserved": 4,
                    "ledger_reserved": 4,
                    "counted_by": "wh-clerk-17",
                    "counted_at": "2026-11-22T18:30:00Z",
                }
            ]
        }
    )

    count_id: str = Field(description="Id of this count (one per count, also the ledger reference)")
    sku: str = Field(description="The SKU; also the event's subject and Kafka key")
    warehouse: str
    counted_on_hand: int = Field(ge=0, description="Units found on the shelf")
    expected_on_hand: int = Field(description="on_hand of the stock row before the count")
    ledger_on_hand: int = Field(description="Sum of the ledger's on-hand movements before it")
    reserved: int = Field(description="reserved of the stock row before the count")
    ledger_reserved: int = Field(description="Sum of the ledger's reserved movements before it")
    counted_by: str = Field(description="Who counted, e.g. a clerk's id")
    counted_at: datetime
