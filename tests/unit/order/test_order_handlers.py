"""Order use cases on an in-memory unit of work: the events and the state each one produces."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from inmemory import NOW, InMemoryUnitOfWork, incoming, one
from inmemory.order import OrderRepository

from orderguard.cli.services_registry import rule_catalogue
from orderguard.services.order import handlers
from orderguard.services.order.domain import Actor, Address, HoldReason, Line, OrderStatus
from orderguard.services.order.handlers import OrderConfig, PlaceOrder
from orderguard.services.order.rules import (
    PaymentCapturedAfterCancel,
    RefusedFact,
    ShipmentDispatchedWhileHeld,
)
from orderguard.shared.detection.config import RuleConfig, parse_detector_config
from orderguard.shared.events import orders as events
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.events.inventory import (
    ReservationFailed,
    ReservedLine,
    Shortage,
    StockReserved,
)
from orderguard.shared.events.logistics import ShipmentDelivered, ShipmentDispatched
from orderguard.shared.events.notifications import NotificationRequested
from orderguard.shared.events.payments import PaymentFailed, PaymentSucceeded
from orderguard.shared.topics import Topics

TOPICS = Topics()
CONFIG = OrderConfig(
    orders_topic=TOPICS.orders,
    notifications_topic=TOPICS.notification_requests,
    anomalies_topic=TOPICS.anomalies,
)
CAPTURED_AFTER_CANCEL = PaymentCapturedAfterCancel(RuleConfig.of(PaymentCapturedAfterCancel))
DISPATCHED_WHILE_HELD = ShipmentDispatchedWhileHeld(RuleConfig.of(ShipmentDispatchedWhileHeld))
API = Actor("api", "shop")
CONSUMER = Actor("consumer", "order")
ADDRESS = Address("浙江省", "杭州市", "西湖区", "文三路 100 号", "张三", "310000")


@pytest.fixture
def repo(monkeypatch: pytest.MonkeyPatch) -> OrderRepository:
    fake = OrderRepository()
    monkeypatch.setattr(handlers, "repository", fake)
    return fake


def command(**changes: object) -> PlaceOrder:
    fields: dict[str, object] = {
        "customer_id": "c-1",
        "phone": "13800138000",
        "address": ADDRESS,
        "lines": (Line("SKU-1", 2, Decimal("10.00")),),
        "channel": "web",
        "warehouse": "hz",
    }
    return PlaceOrder(**{**fields, **changes})  # type: ignore[arg-type]


async def place(repo: OrderRepository, **changes: object) -> str:
    uow = InMemoryUnitOfWork()
    placed = await handlers.place_order(uow, CONFIG, command(**changes), API)
    await uow.commit()  # the order is stored by the unit's last statement, at commit
    return placed.order.order_id


async def pay(
    order_id: str,
    amount: str = "20.00",
    payment_id: str = "pay-1",
    captured_after_cancel: PaymentCapturedAfterCancel = CAPTURED_AFTER_CANCEL,
) -> InMemoryUnitOfWork:
    uow = InMemoryUnitOfWork(NOW + timedelta(minutes=1))
    paid = PaymentSucceeded(
        order_id=order_id,
        payment_id=payment_id,
        amount=Decimal(amount),
        provider="alipay",
        occurred_at=NOW,
    )
    await handlers.apply_payment_events(
        uow, CONFIG, captured_after_cancel, [incoming(paid, order_id)], CONSUMER
    )
    return uow


async def test_placing_an_order_publishes_order_placed_and_stores_it(repo: OrderRepository) -> None:
    uow = InMemoryUnitOfWork()
    placed = await handlers.place_order(uow, CONFIG, command(), API)
    await uow.commit()

    order_id = placed.order.order_id
    assert uow.types() == ["order.placed.v1"]
    event = one(uow.events(events.OrderPlaced))
    assert (event.order_id, event.total_amount, event.phone) == (
        order_id,
        Decimal("20.00"),
        "13800138000",
    )
    assert repo.orders[order_id].status is OrderStatus.PLACED
    [entry] = repo.timelines[order_id]
    assert (entry.what, entry.event_type) == ("placed", "order.placed.v1")
    assert entry.event_id == uow.published[0][1].id
    assert not placed.order.events  # published, not left to publish twice


async def test_an_order_failing_intake_is_placed_held_and_the_customer_told(
    repo: OrderRepository,
) -> None:
    uow = InMemoryUnitOfWork()
    placed = await handlers.place_order(uow, CONFIG, command(phone="12345"), API)
    await uow.commit()

    assert uow.types() == ["order.placed.v1", "order.held.v1", "notification.requested.v1"]
    held = one(uow.events(events.OrderHeld))
    assert (held.reason, held.held_from, held.held_by) == (
        "phone_invalid",
        "placed",
        "rule:order.intake",
    )
    notice = one(uow.events(NotificationRequested))
    assert notice.template == "order.held"
    assert notice.recipient.phone is None  # not a mobile the notifier may text
    assert notice.request_id == f"order.held:{placed.order.order_id}:{uow.published[1][1].id}"
    assert repo.orders[placed.order.order_id].status is OrderStatus.ON_HOLD
    assert [e.event_type for e in repo.timelines[placed.order.order_id]] == [
        "order.placed.v1",
        "order.held.v1",
    ]


async def test_paying_announces_order_paid_and_confirms_to_the_customer(
    repo: OrderRepository,
) -> None:
    order_id = await place(repo)
    uow = await pay(order_id)

    assert uow.types() == ["order.paid.v1", "notification.requested.v1"]
    paid = one(uow.events(events.OrderPaid))
    assert (paid.payment_id, paid.paid_amount, paid.paid_at) == ("pay-1", Decimal("20.00"), uow.now)
    assert paid.promised_delivery_by == NOW + timedelta(days=3)
    notice = one(uow.events(NotificationRequested))
    assert (notice.template, notice.request_id) == (
        "order.confirmed",
        f"order.confirmed:{order_id}:pay-1",
    )
    assert notice.params == {"order_id": order_id, "total_amount": "20.00"}
    assert repo.orders[order_id].status is OrderStatus.PAID
    assert [e.what for e in repo.timelines[order_id]][-2:] == ["paid", "payment_announced"]


async def test_the_same_payment_under_a_new_event_id_applies_once(repo: OrderRepository) -> None:
    order_id = await place(repo)
    await pay(order_id)
    again = await pay(order_id)

    assert again.types() == []
    assert [e.what for e in repo.timelines[order_id]].count("paid") == 1


async def test_a_captured_amount_that_differs_holds_the_order(repo: OrderRepository) -> None:
    order_id = await place(repo)
    uow = await pay(order_id, amount="19.00")

    assert uow.types() == ["order.held.v1", "notification.requested.v1"]
    assert one(uow.events(events.OrderHeld)).reason == "amount_mismatch"
    assert repo.orders[order_id].hold_reason is HoldReason.AMOUNT_MISMATCH


async def test_a_failed_payment_publishes_order_payment_failed(repo: OrderRepository) -> None:
    order_id = await place(repo)
    uow = InMemoryUnitOfWork()
    failed = PaymentFailed(
        order_id=order_id,
        payment_id="pay-9",
        amount=Decimal("20.00"),
        provider="wechat_pay",
        code="insufficient_funds",
        occurred_at=NOW - timedelta(seconds=5),
    )
    await handlers.apply_payment_events(
        uow, CONFIG, CAPTURED_AFTER_CANCEL, [incoming(failed, order_id)], CONSUMER
    )

    event = one(uow.events(events.OrderPaymentFailed))
    assert (event.provider, event.code, event.failed_at) == (
        "wechat_pay",
        "insufficient_funds",
        NOW - timedelta(seconds=5),
    )
    assert repo.orders[order_id].status is OrderStatus.PAYMENT_FAILED


async def test_cancelling_publishes_order_cancelled(repo: OrderRepository) -> None:
    order_id = await place(repo)
    uow = InMemoryUnitOfWork()
    result = await handlers.cancel_order(uow, CONFIG, order_id, "changed my mind", API)

    event = one(uow.events(events.OrderCancelled))
    assert (event.reason, event.cancelled_by) == ("changed my mind", "api:shop")
    assert result.order.status is OrderStatus.CANCELLED
    assert result.timeline[-1].event_id == uow.published[0][1].id


async def test_cancelling_an_unknown_order_is_not_found(repo: OrderRepository) -> None:
    with pytest.raises(handlers.OrderNotFound):
        await handlers.cancel_order(InMemoryUnitOfWork(), CONFIG, "ord_nope", "x", API)


async def test_holding_then_releasing_a_paid_order(repo: OrderRepository) -> None:
    order_id = await place(repo)
    await pay(order_id)
    hold = InMemoryUnitOfWork()
    await handlers.hold_order(hold, CONFIG, order_id, "check the address", None, API)
    assert hold.types() == ["order.held.v1", "notification.requested.v1"]
    assert one(hold.events(events.OrderHeld)).held_from == "paid"

    release = InMemoryUnitOfWork()
    result = await handlers.release_order(release, CONFIG, order_id, "checked", API)
    released = one(release.events(events.OrderReleased))
    assert (released.status, released.hold_reason) == ("paid", "manual")
    assert release.types() == ["order.released.v1"]  # order.paid.v1 went out before the hold
    assert result.order.status is OrderStatus.PAID


async def test_an_order_paid_while_held_is_announced_on_release(repo: OrderRepository) -> None:
    order_id = await place(repo)
    await handlers.hold_order(InMemoryUnitOfWork(), CONFIG, order_id, "look", None, API)
    paid_while_held = await pay(order_id)
    assert paid_while_held.types() == []  # still held: nothing ships yet
    assert repo.orders[order_id].held_from is OrderStatus.PAID

    release = InMemoryUnitOfWork()
    await handlers.release_order(release, CONFIG, order_id, "fine", API)
    assert release.types() == [
        "order.released.v1",
        "order.paid.v1",
        "notification.requested.v1",
    ]
    assert [e.what for e in repo.timelines[order_id]][-2:] == ["released", "payment_announced"]


async def test_a_failed_reservation_holds_the_order_out_of_stock(repo: OrderRepository) -> None:
    order_id = await place(repo)
    failed = ReservationFailed(
        order_id=order_id,
        shortages=[Shortage(sku="SKU-1", warehouse="hz", requested=2, available=0)],
    )
    uow = InMemoryUnitOfWork()
    await handlers.record_inventory_outcomes(uow, CONFIG, [incoming(failed, order_id)], CONSUMER)

    assert uow.types() == ["order.held.v1", "notification.requested.v1"]
    assert one(uow.events(events.OrderHeld)).reason == "out_of_stock"
    notice = one(uow.events(NotificationRequested))
    assert (notice.template, notice.params["skus"]) == ("order.out_of_stock", "SKU-1")
    assert repo.orders[order_id].hold_reason is HoldReason.OUT_OF_STOCK
    whats = [e.what for e in repo.timelines[order_id]]
    assert whats[-2:] == ["stock_reservation_failed", "on_hold"]


async def test_dispatch_ships_the_order_and_delivery_delivers_it(repo: OrderRepository) -> None:
    order_id = await place(repo)
    await pay(order_id)
    dispatched = ShipmentDispatched(
        shipment_id="shp-1",
        order_id=order_id,
        carrier="sf-express",
        tracking_number="SF1",
        warehouse="hz",
        dispatched_at=NOW + timedelta(hours=1),
    )
    uow = InMemoryUnitOfWork()
    await handlers.apply_shipment_events(
        uow, CONFIG, DISPATCHED_WHILE_HELD, [incoming(dispatched, "shp-1")], CONSUMER
    )
    shipped = one(uow.events(events.OrderShipped))
    assert (shipped.shipment_id, shipped.shipped_at) == ("shp-1", NOW + timedelta(hours=1))
    assert one(uow.events(NotificationRequested)).template == "order.shipped"

    again = InMemoryUnitOfWork()
    await handlers.apply_shipment_events(
        again, CONFIG, DISPATCHED_WHILE_HELD, [incoming(dispatched, "shp-1")], CONSUMER
    )
    assert again.types() == []  # the order already reflects it

    delivered = ShipmentDelivered(
        shipment_id="shp-1",
        order_id=order_id,
        carrier="sf-express",
        tracking_number="SF1",
        delivered_at=NOW + timedelta(days=1),
    )
    last = InMemoryUnitOfWork()
    await handlers.apply_shipment_events(
        last, CONFIG, DISPATCHED_WHILE_HELD, [incoming(delivered, "shp-1")], CONSUMER
    )
    assert last.types() == []
    assert repo.orders[order_id].status is OrderStatus.DELIVERED
    assert repo.orders[order_id].delivered_at == NOW + timedelta(days=1)


async def test_the_jobs_cancel_the_unpaid_and_complete_the_delivered(
    repo: OrderRepository,
) -> None:
    unpaid = await place(repo)
    later = InMemoryUnitOfWork(NOW + timedelta(hours=1))
    assert await handlers.cancel_unpaid_orders(later, CONFIG, 10) == 1
    cancelled = one(later.events(events.OrderCancelled))
    assert (cancelled.order_id, cancelled.reason, cancelled.cancelled_by) == (
        unpaid,
        "payment_timeout",
        "rule:order.payment_timeout",
    )

    order_id = await place(repo)
    await pay(order_id)
    repo.orders[order_id].status = OrderStatus.DELIVERED
    repo.orders[order_id].delivered_at = NOW
    week_later = InMemoryUnitOfWork(NOW + timedelta(days=8))
    assert await handlers.complete_delivered_orders(week_later, CONFIG, 10) == 1
    completed = one(week_later.events(events.OrderCompleted))
    assert (completed.delivered_at, completed.completed_at) == (NOW, week_later.now)
    assert repo.orders[order_id].status is OrderStatus.COMPLETED


async def test_customer_type_is_new_then_returning_and_a_member_is_typed_by_level(
    repo: OrderRepository,
) -> None:
    first = await place(repo)
    second = await place(repo, lines=(Line("SKU-9", 1, Decimal("1.00")),))
    gold = await place(repo, customer_id="c-2", member_level="gold")
    assert [repo.orders[i].customer_type for i in (first, second, gold)] == [
        "new",
        "returning",
        "gold",
    ]


async def test_releasing_an_out_of_stock_hold_asks_inventory_again_and_waits_for_stock(
    repo: OrderRepository,
) -> None:
    order_id = await place(repo)
    short = [Shortage(sku="SKU-1", warehouse="hz", requested=2, available=0)]
    failed = ReservationFailed(order_id=order_id, shortages=short)
    await handlers.record_inventory_outcomes(
        InMemoryUnitOfWork(), CONFIG, [incoming(failed, order_id)], CONSUMER
    )

    uow = InMemoryUnitOfWork()
    view = await handlers.release_order(uow, CONFIG, order_id, "restock arrived", API)
    assert uow.types() == ["order.reservation_requested.v1"]
    asked = one(uow.events(events.ReservationRequested))
    assert (asked.warehouse, [(line.sku, line.quantity) for line in asked.lines]) == (
        "hz",
        [("SKU-1", 2)],
    )
    assert view.order.status is OrderStatus.ON_HOLD  # held until stock is reserved
    assert repo.orders[order_id].hold_reason is HoldReason.OUT_OF_STOCK

    still_short = InMemoryUnitOfWork()
    await handlers.record_inventory_outcomes(
        still_short, CONFIG, [incoming(failed, order_id)], CONSUMER
    )
    assert still_short.types() == []  # stays held, with the reason
    assert repo.orders[order_id].hold_reason is HoldReason.OUT_OF_STOCK

    reserved = StockReserved(
        order_id=order_id, lines=[ReservedLine(sku="SKU-1", warehouse="hz", quantity=2)]
    )
    later = InMemoryUnitOfWork()
    await handlers.record_inventory_outcomes(
        later, CONFIG, [incoming(reserved, order_id)], CONSUMER
    )
    assert later.types() == ["order.released.v1"]
    assert repo.orders[order_id].status is OrderStatus.PLACED
    whats = [e.what for e in repo.timelines[order_id]]
    assert whats[-5:] == [
        "on_hold",
        "stock_reservation_requested",
        "stock_reservation_failed",
        "stock_reserved",
        "released",
    ]


async def test_a_payment_captured_on_a_cancelled_order_raises_a_finance_anomaly_once(
    repo: OrderRepository,
) -> None:
    order_id = await place(repo)
    await handlers.cancel_order(InMemoryUnitOfWork(), CONFIG, order_id, "changed mind", API)
    uow = await pay(order_id)
    anomaly = one(uow.events(AnomalyDetected))
    assert (anomaly.rule, anomaly.team, anomaly.severity) == (
        "payment.captured_after_cancel",
        "finance",
        "P2",
    )
    assert (anomaly.labels["order_id"], anomaly.labels["payment_id"]) == (order_id, "pay-1")
    assert uow.types(TOPICS.anomalies) == ["anomaly.detected.v1"]
    assert repo.orders[order_id].status is OrderStatus.CANCELLED
    assert repo.timelines[order_id][-1].what == "pay_not_applied"
    again = await pay(order_id)  # the same capture again: already told
    assert again.types() == []


async def dispatch_for_held_order(
    repo: OrderRepository,
    dispatched_while_held: ShipmentDispatchedWhileHeld = DISPATCHED_WHILE_HELD,
    channel: str = "web",
) -> InMemoryUnitOfWork:
    """A parcel dispatched for an order paid, then held by a person."""
    order_id = await place(repo, channel=channel)
    await pay(order_id)
    await handlers.hold_order(InMemoryUnitOfWork(), CONFIG, order_id, "check", None, API)
    dispatched = ShipmentDispatched(
        shipment_id="shp-1",
        order_id=order_id,
        carrier="sf-express",
        tracking_number="SF1",
        warehouse="hz",
        dispatched_at=NOW + timedelta(hours=1),
    )
    uow = InMemoryUnitOfWork()
    await handlers.apply_shipment_events(
        uow, CONFIG, dispatched_while_held, [incoming(dispatched, "shp-1")], CONSUMER
    )
    assert repo.orders[order_id].status is OrderStatus.ON_HOLD
    assert repo.timelines[order_id][-1].what == "ship_not_applied"
    return uow


async def test_a_dispatch_for_a_held_order_raises_a_logistics_anomaly(
    repo: OrderRepository,
) -> None:
    uow = await dispatch_for_held_order(repo)
    anomaly = one(uow.events(AnomalyDetected))
    assert (anomaly.rule, anomaly.team, anomaly.severity) == (
        "shipment.dispatched_while_held",
        "logistics",
        "P2",
    )
    assert anomaly.labels["shipment_id"] == "shp-1" and "held (manual)" in anomaly.summary
    assert uow.types(TOPICS.anomalies) == ["anomaly.detected.v1"]


def declared(kind: type[RefusedFact], detectors_file: str) -> Any:
    """The declared anomaly kind as the detectors file configures it (checked against the
    whole catalogue, as a worker loads it)."""
    config = parse_detector_config(detectors_file, "test", rule_catalogue())
    return kind(config.rule(kind.name))


async def test_the_detectors_file_re_levels_a_capture_after_cancel_and_can_switch_it_off(
    repo: OrderRepository,
) -> None:
    p1 = declared(
        PaymentCapturedAfterCancel,
        "rules:\n  payment.captured_after_cancel:\n    params: {severity: P1}\n",
    )
    order_id = await place(repo)
    await handlers.cancel_order(InMemoryUnitOfWork(), CONFIG, order_id, "changed mind", API)
    anomaly = one((await pay(order_id, captured_after_cancel=p1)).events(AnomalyDetected))
    assert (anomaly.severity, anomaly.labels["severity"], anomaly.team) == ("P1", "P1", "finance")

    off = declared(
        PaymentCapturedAfterCancel, "rules:\n  payment.captured_after_cancel: {enabled: false}\n"
    )
    other = await place(repo, customer_id="c-2")
    await handlers.cancel_order(InMemoryUnitOfWork(), CONFIG, other, "changed mind", API)
    uow = await pay(other, captured_after_cancel=off)
    assert uow.types() == [], "disabled: nothing raised"
    assert repo.timelines[other][-1].what == "pay_not_applied", "still kept on the timeline"


async def test_the_detectors_file_re_levels_a_dispatch_while_held_per_channel_and_off(
    repo: OrderRepository,
) -> None:
    by_channel = declared(
        ShipmentDispatchedWhileHeld,
        "rules:\n  shipment.dispatched_while_held:\n    params: {severity: P3}\n"
        "    overrides:\n      - match: {channel: app}\n        params: {severity: P1}\n",
    )
    web = one((await dispatch_for_held_order(repo, by_channel)).events(AnomalyDetected))
    app = one((await dispatch_for_held_order(repo, by_channel, "app")).events(AnomalyDetected))
    assert [(a.labels["channel"], a.severity) for a in (web, app)] == [("web", "P3"), ("app", "P1")]

    off = declared(
        ShipmentDispatchedWhileHeld, "rules:\n  shipment.dispatched_while_held: {enabled: false}\n"
    )
    assert (await dispatch_for_held_order(repo, off)).types() == [], "disabled: nothing raised"


async def test_cancelling_a_paid_order_requests_its_refund_once(repo: OrderRepository) -> None:
    order_id = await place(repo)
    await pay(order_id)
    uow = InMemoryUnitOfWork()
    await handlers.cancel_order(uow, CONFIG, order_id, "changed mind", API)
    assert uow.types("orders.events") == ["order.cancelled.v1", "order.refund_requested.v1"]
    asked = one(uow.events(events.OrderRefundRequested))
    assert (asked.payment_id, asked.amount) == ("pay-1", Decimal("20.00"))
    assert [e.what for e in repo.timelines[order_id]][-2:] == ["cancelled", "refund_requested"]

    unpaid = await place(repo, customer_id="c-2")
    plain = InMemoryUnitOfWork()
    await handlers.cancel_order(plain, CONFIG, unpaid, "changed mind", API)
    assert plain.types("orders.events") == ["order.cancelled.v1"]  # nothing was paid
