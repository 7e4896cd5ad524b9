"""Events the order service publishes on `orders.events` (key: order id)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from orderguard.shared.events.registry import event_type


class OrderLine(BaseModel):
    """One line of an order: a SKU, how many, at what unit price."""

    sku: str = Field(min_length=1, max_length=64, description="The product's stock-keeping unit")
    quantity: int = Field(gt=0, description="Units ordered")
    unit_price: Decimal = Field(
        ge=0, decimal_places=2, description="Price of one unit in yuan, at most 2 decimals"
    )


class ShippingAddress(BaseModel):
    """Where the order ships to (a mainland China address)."""

    province: str
    city: str
    district: str
    street: str
    recipient: str = Field(description="Who receives the parcel")
    postal_code: str | None = Field(default=None, description="Six digits; absent when unknown")


ORDER_PLACED_EXAMPLE: JsonDict = {
    "order_id": "ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9",
    "customer_id": "cust-1042",
    "channel": "web",
    "warehouse": "main",
    "lines": [
        {"sku": "MUG-RED-350", "quantity": 2, "unit_price": "39.90"},
        {"sku": "TEA-OOLONG-100G", "quantity": 1, "unit_price": "58.00"},
    ],
    "total_amount": "137.80",
    "phone": "13800138000",
    "shipping_address": {
        "province": "Zhejiang",
        "city": "Hangzhou",
        "district": "Xihu",
        "street": "18 Wensan Road",
        "recipient": "Li Lei",
        "postal_code": "310012",
    },
    "placed_at": "2026-11-22T08:00:00Z",
}


@event_type("order.placed.v1")
class OrderPlaced(BaseModel):
    """An order was placed. Inventory reserves its lines in `warehouse`, all or nothing."""

    model_config = ConfigDict(json_schema_extra={"examples": [ORDER_PLACED_EXAMPLE]})

    order_id: str = Field(description="The order's id; also the event's subject and Kafka key")
    customer_id: str
    channel: str = Field(description="Where the order came from, e.g. web, app, marketplace")
    warehouse: str = Field(description="Warehouse the order ships from; stock is reserved there")
    lines: list[OrderLine] = Field(min_length=1)
    total_amount: Decimal = Field(description="Sum of the lines in yuan, as a decimal string")
    phone: str = Field(description="The customer's mobile number, normalised (11 digits)")
    shipping_address: ShippingAddress
    placed_at: datetime


@event_type("order.cancelled.v1")
class OrderCancelled(BaseModel):
    """An order was cancelled before it shipped. Inventory releases what it held for it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9",
                    "reason": "customer changed their mind",
                    "cancelled_by": "api:orders:write#3f2a9c1d",
                    "cancelled_at": "2026-11-22T08:05:00Z",
                }
            ]
        }
    )

    order_id: str = Field(description="The order's id; also the event's subject and Kafka key")
    reason: str
    cancelled_by: str = Field(description="Who cancelled it, as kind:id (api, operator, rule)")
    cancelled_at: datetime


@event_type("order.paid.v1")
class OrderPaid(BaseModel):
    """An order was paid in full. Logistics creates its shipment; after-sales learns what was paid."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **{k: ORDER_PLACED_EXAMPLE[k] for k in ("order_id", "customer_id", "channel")},
                    "warehouse": "main",
                    "lines": ORDER_PLACED_EXAMPLE["lines"],
                    "total_amount": "137.80",
                    "paid_amount": "137.80",
                    "payment_id": "pay-88231",
                    "phone": "13800138000",
                    "shipping_address": ORDER_PLACED_EXAMPLE["shipping_address"],
                    "promised_delivery_by": "2026-11-25T18:00:00Z",
                    "paid_at": "2026-11-22T08:01:30Z",
                }
            ]
        }
    )

    order_id: str = Field(description="The order's id; also the event's subject and Kafka key")
    customer_id: str
    channel: str
    warehouse: str
    lines: list[OrderLine] = Field(min_length=1)
    total_amount: Decimal
    paid_amount: Decimal = Field(description="What the payment service captured, in yuan")
    payment_id: str
    phone: str = Field(description="The customer's mobile number, for the carrier")
    shipping_address: ShippingAddress
    promised_delivery_by: datetime = Field(description="When the shop promised delivery")
    paid_at: datetime


@event_type("order.shipped.v1")
class OrderShipped(BaseModel):
    """The order's parcel left the warehouse. Inventory commits what it reserved."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9",
                    "shipment_id": "shp_01KAQ6B1C2D3E4F5G6H7J8K9M0",
                    "carrier": "sf-express",
                    "tracking_number": "SF1234567890123",
                    "shipped_at": "2026-11-22T15:00:00Z",
                }
            ]
        }
    )

    order_id: str = Field(description="The order's id; also the event's subject and Kafka key")
    shipment_id: str
    carrier: str
    tracking_number: str
    shipped_at: datetime


@event_type("order.payment_failed.v1")
class OrderPaymentFailed(BaseModel):
    """A payment attempt for an order failed; the customer may retry. Watched for bursts."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9",
                    "customer_id": "cust-1042",
                    "channel": "web",
                    "payment_id": "pay-88230",
                    "provider": "alipay",
                    "code": "insufficient_funds",
                    "failed_at": "2026-11-22T08:01:10Z",
                }
            ]
        }
    )

    order_id: str = Field(description="The order's id; also the event's subject and Kafka key")
    customer_id: str
    channel: str = Field(description="Where the order came from, e.g. web, app")
    payment_id: str | None = Field(default=None, description="The failed attempt's id")
    provider: str = Field(description="Payment provider, e.g. alipay, wechat_pay, unionpay")
    code: str = Field(description="The provider's failure code, e.g. insufficient_funds")
    failed_at: datetime = Field(description="When the payment failed (the payment's own time)")


@event_type("order.held.v1")
class OrderHeld(BaseModel):
    """An order was put on hold for a person to review; it does not move until released."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9",
                    "customer_id": "cust-1042",
                    "channel": "web",
                    "reason": "address_incomplete",
                    "note": "street is missing or shorter than 4 characters",
                    "held_from": "placed",
                    "release_at": None,
                    "held_by": "rule:order.intake",
                    "held_at": "2026-11-22T08:00:00Z",
                }
            ]
        }
    )

    order_id: str = Field(description="The order's id; also the event's subject and Kafka key")
    customer_id: str
    channel: str
    reason: str = Field(
        description="address_incomplete, phone_invalid, out_of_stock, amount_mismatch or manual"
    )
    note: str = Field(description="What a person should look at, in words")
    held_from: str = Field(description="The status a release returns the order to")
    release_at: datetime | None = Field(
        default=None, description="When the hold lifts by itself; None: a person releases it"
    )
    held_by: str = Field(description="Who held it, as kind:id (api, operator, rule, consumer)")
    held_at: datetime


@event_type("order.released.v1")
class OrderReleased(BaseModel):
    """A held order was released, by a person or when its auto-release time came."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9",
                    "reason": "address confirmed by phone",
                    "hold_reason": "address_incomplete",
                    "status": "placed",
                    "released_by": "api:orders:write#3f2a9c1d",
                    "released_at": "2026-11-22T09:00:00Z",
                }
            ]
        }
    )

    order_id: str = Field(description="The order's id; also the event's subject and Kafka key")
    reason: str
    hold_reason: str | None = Field(default=None, description="Why it had been held")
    status: str = Field(description="The status it returned to")
    released_by: str = Field(description="Who released it, as kind:id; rule:auto-release by time")
    released_at: datetime


@event_type("order.reservation_requested.v1")
class ReservationRequested(BaseModel):
    """The order service asks inventory to reserve an order's lines again: an operator released
    its out-of-stock hold. Inventory tries only when the order's last attempt failed (once per
    order line otherwise) and answers with stock.reserved.v1 or reservation.failed.v1; the
    order stays held until stock is reserved."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9",
                    "warehouse": "main",
                    "lines": ORDER_PLACED_EXAMPLE["lines"],
                    "reason": "restock arrived",
                    "requested_by": "api:orders:write#3f2a9c1d",
                    "requested_at": "2026-11-22T09:00:00Z",
                }
            ]
        }
    )

    order_id: str = Field(description="The order's id; also the event's subject and Kafka key")
    warehouse: str = Field(description="Where to reserve, as at placement")
    lines: list[OrderLine] = Field(min_length=1, description="The order's lines, as placed")
    reason: str = Field(description="Why it is tried again, in words")
    requested_by: str = Field(description="Who asked, as kind:id")
    requested_at: datetime


@event_type("order.refund_requested.v1")
class OrderRefundRequested(BaseModel):
    """A paid order was cancelled: its payment is to be refunded. After-sales, which owns
    refunds (the refund caps, refund.issued.v1), issues it once per order and tells the
    customer."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9",
                    "customer_id": "cust-1042",
                    "payment_id": "pay_7Q2M",
                    "amount": "137.80",
                    "reason": "customer changed their mind",
                    "requested_by": "api:orders:write#3f2a9c1d",
                    "requested_at": "2026-11-22T09:00:00Z",
                }
            ]
        }
    )

    order_id: str = Field(description="The order's id; also the event's subject and Kafka key")
    customer_id: str
    payment_id: str = Field(description="The captured payment to refund")
    amount: Decimal = Field(ge=0, description="What was paid, in yuan")
    reason: str = Field(description="Why the order was cancelled")
    requested_by: str = Field(description="Who cancelled it, as kind:id")
    requested_at: datetime


@event_type("order.completed.v1")
class OrderCompleted(BaseModel):
    """A delivered order completed: the after-sales window it waited through has passed."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9",
                    "delivered_at": "2026-11-24T10:12:00Z",
                    "completed_at": "2026-12-01T10:12:05Z",
                }
            ]
        }
    )

    order_id: str = Field(description="The order's id; also the event's subject and Kafka key")
    delivered_at: datetime
    completed_at: datetime
