"""Events the order service publishes on `orders.events` (key: order id)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from orderguard.shared.events.registry import event_type


class OrderLine(BaseModel):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0)
    unit_price: Decimal = Field(ge=0, decimal_places=2)


class ShippingAddress(BaseModel):
    province: str
    city: str
    district: str
    street: str
    recipient: str
    postal_code: str | None = None


@event_type("order.placed.v1")
class OrderPlaced(BaseModel):
    order_id: str
    customer_id: str
    channel: str
    warehouse: str = Field(description="Warehouse the order ships from; stock is reserved there")
    lines: list[OrderLine] = Field(min_length=1)
    total_amount: Decimal
    phone: str
    shipping_address: ShippingAddress
    placed_at: datetime


@event_type("order.cancelled.v1")
class OrderCancelled(BaseModel):
    order_id: str
    reason: str
    cancelled_by: str
    cancelled_at: datetime
