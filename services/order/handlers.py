"""Order use cases: place, cancel, hold, release, read; apply what inventory, payment services
and carriers say about an order; the wall-time jobs (payment timeout, auto-release, completion).

Every state change and the events it causes are written in the caller's unit of work.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from orderguard.services.order import repository
from orderguard.services.order.domain import (
    Actor,
    Address,
    HoldReason,
    Line,
    MemberLevel,
    Order,
    OrderAction,
    OrderStatus,
    TimelineEntry,
    customer_notice,
    new_order_id,
    out_of_stock_notice,
)
from orderguard.services.order.rules import PaymentCapturedAfterCancel, ShipmentDispatchedWhileHeld
from orderguard.shared import metrics
from orderguard.shared.engine import Event
from orderguard.shared.errors import NotFound
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.events.inventory import ReservationFailed, ReservationReleased, StockReserved
from orderguard.shared.events.logistics import ShipmentDelivered, ShipmentDispatched
from orderguard.shared.events.notifications import CustomerNotice
from orderguard.shared.events.payments import (
    PaymentAmountMismatch,
    PaymentFailed,
    PaymentSucceeded,
)
from orderguard.shared.logging import get_logger
from orderguard.shared.uow import UnitOfWork

SOURCE = "/orderguard/order"

# Phone and address never go to the logs: only ids, channel, counts and amounts.
log = get_logger(__name__)

PAYMENT_TIMEOUT = Actor("rule", "order.payment_timeout")
AUTO_RELEASE = Actor("rule", "order.auto_release")
AUTO_COMPLETE = Actor("rule", "order.auto_complete")

# Anomalies found while applying a fact (the declared `RefusedFact`s, not a stream rule).
ANOMALY_SOURCE = "/orderguard/order/facts"


class OrderNotFound(NotFound):
    def __init__(self, order_id: str) -> None:
        super().__init__("order", order_id)
        self.order_id = order_id


@dataclass(frozen=True, slots=True)
class OrderConfig:
    """Where the order service publishes and the lifecycle's settings (from `Settings`)."""

    orders_topic: str
    notifications_topic: str
    anomalies_topic: str
    payment_deadline: timedelta = timedelta(minutes=30)
    promise_days: int = 3
    express_promise_days: int = 1
    complete_after: timedelta = timedelta(days=7)

    def promised_days(self, express: bool) -> int:
        return self.express_promise_days if express else self.promise_days


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """A validated request to place an order (the phone as given: intake checks judge it)."""

    customer_id: str
    phone: str
    address: Address
    lines: tuple[Line, ...]
    channel: str
    warehouse: str
    member_level: MemberLevel = "regular"
    express: bool = False


@dataclass(frozen=True, slots=True)
class OrderWithTimeline:
    order: Order
    timeline: list[TimelineEntry]


def _announce(
    uow: UnitOfWork, config: OrderConfig, order: Order, entries: list[TimelineEntry]
) -> list[TimelineEntry]:
    """Publish the events the order recorded for `entries` (one each, in order), tell the
    customer what concerns them, and return the entries told by their event."""
    recorded = list(order.events)
    order.events.clear()
    told = []
    for entry, data in zip(entries, recorded, strict=True):
        envelope = uow.publish(config.orders_topic, data, source=SOURCE, subject=order.order_id)
        notice = customer_notice(order, data, envelope.id)
        if notice is not None:
            _notify_customer(uow, config, order, notice)
        told.append(entry.told_by(envelope.type, envelope.id))
    return told


def _notify_customer(
    uow: UnitOfWork, config: OrderConfig, order: Order, notice: CustomerNotice
) -> None:
    uow.notify_customer(
        config.notifications_topic,
        notice,
        source=SOURCE,
        customer_id=order.customer_id,
        phone=order.reachable_mobile,
    )


async def place_order(
    uow: UnitOfWork, config: OrderConfig, command: PlaceOrder, actor: Actor
) -> OrderWithTimeline:
    order, entries = Order.place(
        order_id=new_order_id(uow.now),
        customer_id=command.customer_id,
        phone=command.phone,
        address=command.address,
        lines=command.lines,
        channel=command.channel,
        warehouse=command.warehouse,
        actor=actor,
        now=uow.now,
        member_level=command.member_level,
        express=command.express,
        promised_days=config.promised_days(command.express),
        payment_due_at=uow.now + config.payment_deadline,
    )
    entries = _announce(uow, config, order, entries)  # placed, and held by the intake checks
    # The order, its timeline and its events (and an idempotent request's answer) in the one
    # statement of this unit of work, sent at commit; it also decides the customer type (new or
    # returning: has the customer ordered before?).
    uow.write_last(lambda conn, riders: repository.add(conn, order, entries, riders))
    log.info(
        "order placed",
        order_id=order.order_id,
        channel=order.channel,
        warehouse=order.warehouse,
        lines=len(order.lines),
        total_amount=str(order.total_amount),
        status=str(order.status),
    )
    return OrderWithTimeline(order, entries)


async def _locked(uow: UnitOfWork, order_id: str) -> Order:
    order = await repository.get(uow.conn, order_id, for_update=True)
    if order is None:
        raise OrderNotFound(order_id)
    return order


async def _stored(uow: UnitOfWork, order: Order, entries: list[TimelineEntry]) -> OrderWithTimeline:
    """Store a person's change to an order and its entries; the order as it now reads."""
    await repository.save(uow.conn, [order])
    await repository.record(uow.conn, [(order.order_id, entry) for entry in entries])
    return OrderWithTimeline(order, await repository.timeline(uow.conn, order.order_id))


def _cancel(
    uow: UnitOfWork, config: OrderConfig, order: Order, reason: str, actor: Actor
) -> list[TimelineEntry]:
    """-> cancelled (order.cancelled.v1: inventory releases); a paid order also asks for its
    refund (order.refund_requested.v1: after-sales issues it)."""
    entries = [order.cancel(reason, actor, uow.now)]
    refund = order.request_refund(reason, actor, uow.now)
    entries += [refund] if refund else []
    log.info("order cancelled", order_id=order.order_id, actor=str(actor), refund=bool(refund))
    return _announce(uow, config, order, entries)


async def cancel_order(
    uow: UnitOfWork, config: OrderConfig, order_id: str, reason: str, actor: Actor
) -> OrderWithTimeline:
    """-> cancelled (order.cancelled.v1: inventory releases); IllegalTransition otherwise."""
    order = await _locked(uow, order_id)
    return await _stored(uow, order, _cancel(uow, config, order, reason, actor))


async def hold_order(
    uow: UnitOfWork,
    config: OrderConfig,
    order_id: str,
    note: str,
    release_at: datetime | None,
    actor: Actor,
) -> OrderWithTimeline:
    """A person holds an order (reason `manual`), optionally until `release_at`."""
    order = await _locked(uow, order_id)
    entries = _announce(
        uow, config, order, [order.hold(HoldReason.MANUAL, note, release_at, actor, uow.now)]
    )
    log.info("order held", order_id=order.order_id, reason=str(order.hold_reason))
    return await _stored(uow, order, entries)


async def _release_or_retry(
    uow: UnitOfWork, config: OrderConfig, order: Order, reason: str, actor: Actor
) -> list[TimelineEntry]:
    """A release asked for by a person or the clock; an out-of-stock hold asks inventory
    again instead and is released when stock is reserved (record_inventory_outcomes)."""
    if order.hold_reason is HoldReason.OUT_OF_STOCK:
        log.info("stock asked for again", order_id=order.order_id, actor=str(actor))
        return _announce(uow, config, order, [order.retry_reservation(reason, actor, uow.now)])
    return await _release(uow, config, order, reason, actor)


async def _release(
    uow: UnitOfWork, config: OrderConfig, order: Order, reason: str, actor: Actor
) -> list[TimelineEntry]:
    entry = order.release(reason, actor, uow.now)
    if order.status in (OrderStatus.PLACED, OrderStatus.PAYMENT_FAILED):
        # The customer gets a full payment window after a person's review.
        fresh = uow.now + config.payment_deadline
        order.payment_due_at = max(order.payment_due_at or fresh, fresh)
    entries = [entry]
    if order.status is OrderStatus.PAID and not await repository.has_event(
        uow.conn, order.order_id, "order.paid.v1"
    ):  # paid while held: announced now
        entries.append(order.announce_paid(actor, uow.now))
    entries = _announce(uow, config, order, entries)
    log.info("order released", order_id=order.order_id, actor=str(actor))
    return entries


async def release_order(
    uow: UnitOfWork, config: OrderConfig, order_id: str, reason: str, actor: Actor
) -> OrderWithTimeline:
    """A held order returns to the status it was held from (order.released.v1); an
    out-of-stock hold asks inventory again first (order.reservation_requested.v1)."""
    order = await _locked(uow, order_id)
    return await _stored(uow, order, await _release_or_retry(uow, config, order, reason, actor))


async def order_with_timeline(conn: repository.Connection, order_id: str) -> OrderWithTimeline:
    found = await repository.get_with_timeline(conn, order_id)
    if found is None:
        raise OrderNotFound(order_id)
    return OrderWithTimeline(*found)


# -- inventory outcomes ----------------------------------------------------------------------


def inventory_outcome(event: Event, actor: Actor) -> tuple[str, TimelineEntry]:
    """What an inventory event means on the order's timeline. The status is left as it is."""
    data = event.data
    at: datetime = event.envelope.time
    if isinstance(data, StockReserved):
        entry = TimelineEntry(
            at=at,
            what="stock_reserved",
            actor=actor,
            note="inventory reserved every line",
            details={"lines": [line.model_dump(mode="json") for line in data.lines]},
        )
    elif isinstance(data, ReservationFailed):
        entry = TimelineEntry(
            at=at,
            what="stock_reservation_failed",
            actor=actor,
            note="not enough stock for "
            + ", ".join(f"{s.sku}@{s.warehouse}" for s in data.shortages),
            details={
                "shortages": [shortage.model_dump(mode="json") for shortage in data.shortages]
            },
        )
    elif isinstance(data, ReservationReleased):
        entry = TimelineEntry(
            at=at,
            what="stock_released",
            actor=actor,
            note=data.reason,
            details={"lines": [line.model_dump(mode="json") for line in data.lines]},
        )
    else:
        raise TypeError(f"not an inventory outcome: {event.type}")
    return data.order_id, entry.told_by(event.type, event.id)


async def record_inventory_outcomes(
    uow: UnitOfWork, config: OrderConfig, outcomes: Iterable[Event], actor: Actor
) -> None:
    """Record inventory outcomes on our orders' timelines, each event once per order; a
    reservation that failed holds the order as out of stock and tells the customer."""
    outcomes = list(outcomes)
    by_order: dict[str, list[TimelineEntry]] = {}
    for event in outcomes:
        order_id, entry = inventory_outcome(event, actor)
        by_order.setdefault(order_id, []).append(entry)
    orders = await repository.get_many(uow.conn, by_order)
    for order_id in sorted(by_order.keys() - orders.keys()):
        # Inventory also serves orders placed by outside storefronts; they have no timeline here.
        log.info("inventory outcome for an order not placed here", order_id=order_id)
    entries = [(order_id, entry) for order_id in sorted(orders) for entry in by_order[order_id]]
    changed: dict[str, Order] = {}
    for event in outcomes:
        data = event.data
        if isinstance(data, StockReserved) and data.order_id in orders:
            order = orders[data.order_id]
            if order.hold_reason is HoldReason.OUT_OF_STOCK:  # the retry a release asked for
                released = await _release(uow, config, order, "stock reserved", actor)
                entries += [(order.order_id, entry) for entry in released]
                changed[order.order_id] = order
            continue
        if not isinstance(data, ReservationFailed) or data.order_id not in orders:
            continue
        order = orders[data.order_id]
        skus = ", ".join(sorted({shortage.sku for shortage in data.shortages}))
        if order.hold_reason is HoldReason.OUT_OF_STOCK:
            continue  # the same shortage told again
        if OrderAction.HOLD in order.allowed_actions:
            entry = order.hold(
                HoldReason.OUT_OF_STOCK,
                f"not enough stock for {skus}",
                None,
                actor,
                uow.now,
                details={
                    "shortages": [shortage.model_dump(mode="json") for shortage in data.shortages]
                },
            )
            [entry] = _announce(uow, config, order, [entry])
            entries.append((order.order_id, entry))
            changed[order.order_id] = order
            log.info("order held", order_id=order.order_id, reason=str(order.hold_reason))
        elif order.status is not OrderStatus.ON_HOLD:
            continue  # cancelled or already on its way: nothing to offer
        _notify_customer(uow, config, order, out_of_stock_notice(order, skus))
    await repository.save(uow.conn, changed.values())
    await repository.record(uow.conn, entries)


# -- payments ----------------------------------------------------------------------------------


def _not_applied(event: Event, order: Order, action: OrderAction, actor: Actor) -> TimelineEntry:
    """A valid fact that the order's status does not allow: kept on the timeline, not applied."""
    log.warning(
        "event not applied to the order",
        order_id=order.order_id,
        event_type=event.type,
        status=str(order.status),
    )
    return TimelineEntry(
        at=event.envelope.time,
        what=f"{action}_not_applied",
        actor=actor,
        note=f"{event.type} arrived while the order is {order.status}: cannot {action}",
        from_state=order.status,
        to_state=order.status,
    ).told_by(event.type, event.id)


def _raise(
    uow: UnitOfWork, config: OrderConfig, anomaly: AnomalyDetected | None, event: Event
) -> None:
    """Publish an anomaly found while applying `event` (None: the detectors file disables it)."""
    if anomaly is None:
        return
    uow.publish(
        config.anomalies_topic,
        anomaly,
        source=ANOMALY_SOURCE,
        subject=anomaly.fingerprint,
        cause=event.envelope,
        time=anomaly.detected_at,
    )
    uow.after_commit(metrics.ANOMALIES_DETECTED.labels(anomaly.rule, anomaly.severity).inc)
    log.warning("refused fact raised", order_id=anomaly.labels["order_id"], rule=anomaly.rule)


# What each payment fact does to the order; a fact its status does not allow is not applied.
_PAYMENT_ACTIONS: dict[type, OrderAction] = {
    PaymentSucceeded: OrderAction.PAY,
    PaymentFailed: OrderAction.FAIL_PAYMENT,
    PaymentAmountMismatch: OrderAction.HOLD,
}


async def apply_payment_events(
    uow: UnitOfWork,
    config: OrderConfig,
    captured_after_cancel: PaymentCapturedAfterCancel,
    batch: Iterable[Event],
    actor: Actor,
) -> None:
    """Payment outcomes: succeeded -> paid, failed -> payment_failed (a retry may still pay),
    amount mismatch -> held. Each payment fact applies once per order, whatever its event id.
    A capture on a cancelled order raises `captured_after_cancel` (finance refunds it)."""
    batch = list(batch)
    orders = await repository.get_many(uow.conn, {event.data.order_id for event in batch})  # type: ignore[attr-defined]
    ours = []
    for event in batch:
        data = event.data
        assert isinstance(data, PaymentSucceeded | PaymentFailed | PaymentAmountMismatch)
        if data.order_id in orders:
            ours.append(event)
        else:
            log.info("payment for an order not placed here", order_id=data.order_id)
    outcomes = [event.type.split(".")[1] for event in ours]  # succeeded | failed | amount_mismatch
    firsts = await repository.first_times(
        uow.conn,
        [
            (event.data.order_id, event.data.payment_id, outcome)  # type: ignore[attr-defined]
            for event, outcome in zip(ours, outcomes, strict=True)
        ],
    )
    entries: list[tuple[str, TimelineEntry]] = []
    changed: dict[str, Order] = {}
    for event, first in zip(ours, firsts, strict=True):
        if not first:
            continue  # the same fact again, under a new event id
        data = event.data
        assert isinstance(data, PaymentSucceeded | PaymentFailed | PaymentAmountMismatch)
        order = orders[data.order_id]
        if isinstance(data, PaymentSucceeded) and data.amount != order.total_amount:
            data = PaymentAmountMismatch(
                order_id=data.order_id,
                payment_id=data.payment_id,
                amount=data.amount,
                expected_amount=order.total_amount,
                provider=data.provider,
                reason="captured amount differs from the order total",
                occurred_at=data.occurred_at,
            )
        action = _PAYMENT_ACTIONS[type(data)]
        if action not in order.allowed_actions:
            if order.status is OrderStatus.CANCELLED and not isinstance(data, PaymentFailed):
                anomaly = captured_after_cancel.anomaly(order, data, event.envelope, uow.now)
                _raise(uow, config, anomaly, event)
            entries.append((order.order_id, _not_applied(event, order, action, actor)))
        elif isinstance(data, PaymentSucceeded):
            entries += _apply_success(uow, config, order, event, data, actor)
        elif isinstance(data, PaymentFailed):
            entries += _apply_failure(uow, config, order, event, data, actor)
        else:
            entries += _apply_mismatch(uow, config, order, event, data, actor)
        changed[order.order_id] = order
    await repository.save(uow.conn, changed.values())
    await repository.record(uow.conn, entries)


def _apply_success(
    uow: UnitOfWork,
    config: OrderConfig,
    order: Order,
    event: Event,
    data: PaymentSucceeded,
    actor: Actor,
) -> list[tuple[str, TimelineEntry]]:
    promised = data.occurred_at + timedelta(days=config.promised_days(order.express))
    entry = order.pay(data.payment_id, data.amount, promised, actor, uow.now)
    entries = [(order.order_id, entry.told_by(event.type, event.id))]
    if order.status is OrderStatus.PAID:  # a held order announces it when released
        [announced] = _announce(uow, config, order, [order.announce_paid(actor, uow.now)])
        entries.append((order.order_id, announced))
    log.info("order paid", order_id=order.order_id, provider=data.provider)
    return entries


def _apply_failure(
    uow: UnitOfWork,
    config: OrderConfig,
    order: Order,
    event: Event,
    data: PaymentFailed,
    actor: Actor,
) -> list[tuple[str, TimelineEntry]]:
    entry = order.fail_payment(
        data.payment_id,
        data.code,
        data.reason,
        actor,
        uow.now,
        provider=data.provider,
        failed_at=data.occurred_at,
    )
    [entry] = _announce(uow, config, order, [entry])
    log.info("order payment failed", order_id=order.order_id, provider=data.provider)
    return [(order.order_id, entry)]


def _apply_mismatch(
    uow: UnitOfWork,
    config: OrderConfig,
    order: Order,
    event: Event,
    data: PaymentAmountMismatch,
    actor: Actor,
) -> list[tuple[str, TimelineEntry]]:
    expected = data.expected_amount if data.expected_amount is not None else order.total_amount
    entry = order.hold(
        HoldReason.AMOUNT_MISMATCH,
        f"payment {data.payment_id} captured {data.amount}, the order totals {expected}",
        None,
        actor,
        uow.now,
        details={
            "payment_id": data.payment_id,
            "amount": str(data.amount),
            "expected_amount": str(Decimal(expected)),
        },
    )
    [entry] = _announce(uow, config, order, [entry])
    log.info("order held", order_id=order.order_id, reason=str(order.hold_reason))
    return [(order.order_id, entry)]


# -- shipments -------------------------------------------------------------------------------

_SHIPPED_OR_LATER = frozenset({OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.COMPLETED})
_DELIVERED_OR_LATER = frozenset({OrderStatus.DELIVERED, OrderStatus.COMPLETED})
# What each carrier fact does to the order, and the statuses that already reflect it.
_SHIPMENT_ACTIONS: dict[type, tuple[OrderAction, frozenset[OrderStatus]]] = {
    ShipmentDispatched: (OrderAction.SHIP, _SHIPPED_OR_LATER),
    ShipmentDelivered: (OrderAction.DELIVER, _DELIVERED_OR_LATER),
}


async def apply_shipment_events(
    uow: UnitOfWork,
    config: OrderConfig,
    dispatched_while_held: ShipmentDispatchedWhileHeld,
    batch: Iterable[Event],
    actor: Actor,
) -> None:
    """dispatched -> shipped (order.shipped.v1: inventory commits; the customer is told),
    delivered -> delivered. A fact the order already reflects changes nothing. A dispatch for
    a held order raises `dispatched_while_held` (logistics stops or recalls the parcel)."""
    batch = list(batch)
    orders = await repository.get_many(uow.conn, {event.data.order_id for event in batch})  # type: ignore[attr-defined]
    entries: list[tuple[str, TimelineEntry]] = []
    changed: dict[str, Order] = {}
    for event in batch:
        data = event.data
        assert isinstance(data, ShipmentDispatched | ShipmentDelivered)
        order = orders.get(data.order_id)
        if order is None:
            log.info("shipment for an order not placed here", order_id=data.order_id)
            continue
        action, reflected_by = _SHIPMENT_ACTIONS[type(data)]
        if order.status in reflected_by:
            continue
        if action not in order.allowed_actions:
            if isinstance(data, ShipmentDispatched) and order.status is OrderStatus.ON_HOLD:
                anomaly = dispatched_while_held.anomaly(order, data, event.envelope, uow.now)
                _raise(uow, config, anomaly, event)
            entries.append((order.order_id, _not_applied(event, order, action, actor)))
            continue
        if isinstance(data, ShipmentDispatched):
            entry = order.ship(
                data.shipment_id,
                data.carrier,
                data.tracking_number,
                actor,
                uow.now,
                shipped_at=data.dispatched_at,
            )
            [entry] = _announce(uow, config, order, [entry])
        else:
            entry = order.deliver(data.shipment_id, actor, uow.now, delivered_at=data.delivered_at)
            entry = entry.told_by(event.type, event.id)
        entries.append((order.order_id, entry))
        changed[order.order_id] = order
    await repository.save(uow.conn, changed.values())
    await repository.record(uow.conn, entries)


# -- scheduled jobs (wall time) ----------------------------------------------------------------


async def cancel_unpaid_orders(uow: UnitOfWork, config: OrderConfig, limit: int) -> int:
    """Orders unpaid past their payment deadline are cancelled (`payment_timeout`); the
    order.cancelled.v1 makes inventory release their reservation."""
    due = await repository.unpaid_past_deadline(uow.conn, uow.now, limit)
    entries = []
    for order in due:
        cancelled = _cancel(uow, config, order, "payment_timeout", PAYMENT_TIMEOUT)
        entries += [(order.order_id, entry) for entry in cancelled]
    await repository.save(uow.conn, due)
    await repository.record(uow.conn, entries)
    return len(due)


async def release_due_holds(uow: UnitOfWork, config: OrderConfig, limit: int) -> int:
    """Holds whose auto-release time has come are released."""
    due = await repository.holds_to_release(uow.conn, uow.now, limit)
    entries = []
    for order in due:
        released = await _release_or_retry(
            uow, config, order, "auto-release time reached", AUTO_RELEASE
        )
        for entry in released:
            entries.append((order.order_id, entry))
    await repository.save(uow.conn, due)
    await repository.record(uow.conn, entries)
    return len(due)


async def complete_delivered_orders(uow: UnitOfWork, config: OrderConfig, limit: int) -> int:
    """Delivered orders complete once `complete_after` has passed since delivery."""
    due = await repository.delivered_before(uow.conn, uow.now - config.complete_after, limit)
    entries = []
    for order in due:
        entry = order.complete(
            f"delivered {config.complete_after} ago without an open question",
            AUTO_COMPLETE,
            uow.now,
        )
        [entry] = _announce(uow, config, order, [entry])
        entries.append((order.order_id, entry))
    await repository.save(uow.conn, due)
    await repository.record(uow.conn, entries)
    return len(due)


async def list_orders(
    conn: repository.Connection,
    status: str | None = None,
    hold_reason: str | None = None,
    customer_id: str | None = None,
    channel: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Order]:
    """The operators' queue: filtered, highest priority first, then oldest first."""
    return await repository.queue(conn, status, hold_reason, customer_id, channel, limit, offset)
