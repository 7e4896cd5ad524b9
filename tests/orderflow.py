"""Helpers for end-to-end tests of the order lifecycle: outside facts (payments, shipments) as
their publishers send them, and waits on an order's status and timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from testkit import RunningService, events_of_type, publish_event, tuned, wait_until

from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.logistics import ShipmentDelivered, ShipmentDispatched
from orderguard.shared.events.orders import OrderLine, OrderPaid, OrderPlaced, ShippingAddress
from orderguard.shared.events.payments import (
    PaymentAmountMismatch,
    PaymentFailed,
    PaymentSucceeded,
)
from orderguard.shared.settings import Settings

EVENT_T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
ADDRESS = ShippingAddress(
    province="浙江省", city="杭州市", district="西湖区", street="文三路 1 号", recipient="李雷"
)


def placed_event(
    order_id: str,
    seconds: float,
    customer: str = "c-1",
    lines: tuple[tuple[str, int], ...] = (("SKU-1", 2), ("SKU-2", 1)),
    street: str = "文三路 1 号",
    channel: str = "web",
) -> Event:
    at = EVENT_T0 + timedelta(seconds=seconds)
    data = OrderPlaced(
        order_id=order_id,
        customer_id=customer,
        channel=channel,
        warehouse="main",
        lines=[OrderLine(sku=s, quantity=q, unit_price=Decimal("1.00")) for s, q in lines],
        total_amount=Decimal("3.00"),
        phone="13800138000",
        shipping_address=ADDRESS.model_copy(update={"street": street}),
        placed_at=at,
    )
    envelope = Envelope(
        id=f"e-{order_id}",
        type="order.placed.v1",
        source="/test",
        subject=order_id,
        time=at,
        data=data.model_dump(mode="json"),
    )
    return Event(envelope, data, "orders.events", 0, 0)


def order_body(
    customer_id: str = "cust-1", sku: str = "SKU-1", quantity: int = 1, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer_id": customer_id,
        "phone": "13912345678",
        "shipping_address": {
            "province": "广东省",
            "city": "深圳市",
            "district": "南山区",
            "street": "科技园 1 号",
            "recipient": "韩梅梅",
            "postal_code": "518057",
        },
        "lines": [{"sku": sku, "quantity": quantity, "unit_price": "10.00"}],
        "channel": "app",
    }
    body.update(extra)
    return body


def payment(
    kind: str,
    order_id: str,
    payment_id: str,
    amount: str = "10.00",
    code: str = "insufficient_funds",
    expected: str | None = None,
) -> Envelope:
    """A payment service's event on payments.events (key: order id)."""
    now = datetime.now(UTC)
    common = {
        "order_id": order_id,
        "payment_id": payment_id,
        "amount": Decimal(amount),
        "provider": "alipay",
        "occurred_at": now,
    }
    data: Any
    if kind == "succeeded":
        data = PaymentSucceeded(**common)
    elif kind == "failed":
        data = PaymentFailed(**common, code=code, reason="declined")
    else:
        data = PaymentAmountMismatch(
            **common, expected_amount=Decimal(expected) if expected else None
        )
    return Envelope(
        type=f"payment.{kind}.v1",
        source="/payments/alipay",
        subject=order_id,
        data=data.model_dump(mode="json"),
    )


def shipment(kind: str, order_id: str, shipment_id: str) -> Envelope:
    now = datetime.now(UTC)
    common = {
        "shipment_id": shipment_id,
        "order_id": order_id,
        "carrier": "sf-express",
        "tracking_number": "SF100",
    }
    data: Any = (
        ShipmentDispatched(**common, warehouse="main", dispatched_at=now)
        if kind == "dispatched"
        else ShipmentDelivered(**common, delivered_at=now)
    )
    return Envelope(
        type=f"shipment.{kind}.v1",
        source="/logistics",
        subject=shipment_id,
        data=data.model_dump(mode="json"),
    )


def topic(settings: Settings, base: str) -> str:
    return settings.topic_prefix + base


async def send(settings: Settings, base_topic: str, envelope: Envelope) -> None:
    await publish_event(settings, topic(settings, base_topic), envelope)


async def place(service: RunningService, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await service.client.post("/orders", json=body or order_body())
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def order_view(service: RunningService, order_id: str) -> dict[str, Any]:
    response = await service.client.get(f"/orders/{order_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def wait_status(
    service: RunningService, order_id: str, status: str, timeout: float = 20.0
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        view = await order_view(service, order_id)
        return view if view["status"] == status else None

    return await wait_until(reached, timeout, what=f"order {order_id} {status}")


async def wait_entry(
    service: RunningService, order_id: str, what: str, count: int = 1, timeout: float = 20.0
) -> dict[str, Any]:
    """The order's view once its timeline holds `count` entries `what`."""

    async def recorded() -> dict[str, Any] | None:
        view = await order_view(service, order_id)
        found = [entry for entry in view["timeline"] if entry["what"] == what]
        return view if len(found) >= count else None

    return await wait_until(recorded, timeout, what=f"{what} on the timeline of {order_id}")


async def published(
    settings: Settings, base_topic: str, event_type: str, subject: str | None = None
) -> list[Envelope]:
    return [
        envelope
        for envelope in await events_of_type(settings, topic(settings, base_topic), event_type)
        if subject is None or envelope.subject == subject
    ]


async def notifications(settings: Settings, template: str, order_id: str) -> list[Envelope]:
    return [
        envelope
        for envelope in await published(
            settings, "notifications.requests", "notification.requested.v1"
        )
        if envelope.data["template"] == template
        and envelope.data["params"].get("order_id") == order_id
    ]


def fast(settings: Settings, **overrides: Any) -> Settings:
    """The test deployment's settings with scheduled jobs every 0.1 s (and `overrides`)."""
    return tuned(settings, job_interval_s=0.1, **overrides)


SHOP_ADDRESS = ShippingAddress(
    province="Zhejiang", city="Hangzhou", district="Xihu", street="1 Wensan Rd", recipient="Li Lei"
)
PAID_LINES = [
    OrderLine(sku="MUG", quantity=2, unit_price=Decimal("39.90")),
    OrderLine(sku="TEA", quantity=1, unit_price=Decimal("58.00")),
]


def paid_order_events(
    order_id: str, customer: str = "cust-1", paid_ago: timedelta = timedelta(days=1)
) -> list[Envelope]:
    """order.placed.v1 and order.paid.v1 of one order (2 MUG, 1 TEA), paid `paid_ago`; the
    promised delivery three days after payment."""
    paid_at = datetime.now(UTC) - paid_ago
    common: dict[str, Any] = {
        "order_id": order_id,
        "customer_id": customer,
        "channel": "web",
        "warehouse": "main",
        "lines": PAID_LINES,
        "total_amount": Decimal("137.80"),
        "phone": "13800138000",
        "shipping_address": SHOP_ADDRESS,
    }
    placed = OrderPlaced(**common, placed_at=paid_at - timedelta(minutes=2))
    paid = OrderPaid(
        **common,
        paid_amount=Decimal("137.80"),
        payment_id=f"pay-{order_id}",
        promised_delivery_by=paid_at + timedelta(days=3),
        paid_at=paid_at,
    )
    return [
        Envelope(type=t, source="/test/order", subject=order_id, data=d.model_dump(mode="json"))
        for t, d in (("order.placed.v1", placed), ("order.paid.v1", paid))
    ]
