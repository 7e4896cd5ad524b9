"""Events the inventory service publishes on `inventory.events` (key: SKU for stock, order id for reservations)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orderguard.shared.events.registry import event_type


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
