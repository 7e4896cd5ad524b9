"""Order use cases: place, cancel, read, and record what inventory did for an order."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime

from orderguard.services.order import repository
from orderguard.services.order.domain import (
    Actor,
    Address,
    Line,
    Order,
    TimelineEntry,
    new_order_id,
)
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events import REGISTRY
from orderguard.shared.events import orders as events
from orderguard.shared.events.inventory import ReservationFailed, ReservationReleased, StockReserved
from orderguard.shared.logging import get_logger
from orderguard.shared.uow import UnitOfWork

SOURCE = "/orderguard/order"

# Phone and address never go to the logs: only ids, channel, counts and amounts.
log = get_logger(__name__)


class OrderNotFound(LookupError):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"no order {order_id}")
        self.order_id = order_id


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """A validated request to place an order."""

    customer_id: str
    phone: str
    address: Address
    lines: tuple[Line, ...]
    channel: str
    warehouse: str


@dataclass(frozen=True, slots=True)
class OrderWithTimeline:
    order: Order
    timeline: list[TimelineEntry]


def _publish(
    uow: UnitOfWork, topic: str, order_id: str, data: events.OrderPlaced | events.OrderCancelled
) -> Envelope:
    envelope = Envelope(
        type=REGISTRY.type_of(type(data)),
        source=SOURCE,
        subject=order_id,
        data=data.model_dump(mode="json"),
    )
    uow.publish(topic, envelope)
    return envelope


async def place_order(
    uow: UnitOfWork, topic: str, command: PlaceOrder, actor: Actor
) -> OrderWithTimeline:
    order, entry = Order.place(
        order_id=new_order_id(uow.now),
        customer_id=command.customer_id,
        phone=command.phone,
        address=command.address,
        lines=command.lines,
        channel=command.channel,
        warehouse=command.warehouse,
        actor=actor,
        now=uow.now,
    )
    envelope = _publish(
        uow,
        topic,
        order.order_id,
        events.OrderPlaced(
            order_id=order.order_id,
            customer_id=order.customer_id,
            channel=order.channel,
            warehouse=order.warehouse,
            lines=[
                events.OrderLine(sku=line.sku, quantity=line.quantity, unit_price=line.unit_price)
                for line in order.lines
            ],
            total_amount=order.total_amount,
            phone=order.phone,
            shipping_address=events.ShippingAddress(**asdict(order.address)),
            placed_at=order.placed_at,
        ),
    )
    entry = entry.told_by(envelope.type, envelope.id)
    await repository.add(uow.conn, order)
    await repository.record(uow.conn, [(order.order_id, entry)])
    log.info(
        "order placed",
        order_id=order.order_id,
        channel=order.channel,
        warehouse=order.warehouse,
        lines=len(order.lines),
        total_amount=str(order.total_amount),
    )
    return OrderWithTimeline(order, [entry])


async def cancel_order(
    uow: UnitOfWork, topic: str, order_id: str, reason: str, actor: Actor
) -> OrderWithTimeline:
    """placed -> cancelled; raises IllegalTransition (naming the current status) otherwise."""
    order = await repository.get(uow.conn, order_id, for_update=True)
    if order is None:
        raise OrderNotFound(order_id)
    entry = order.cancel(reason, actor, uow.now)
    envelope = _publish(
        uow,
        topic,
        order.order_id,
        events.OrderCancelled(
            order_id=order.order_id, reason=reason, cancelled_by=str(actor), cancelled_at=uow.now
        ),
    )
    await repository.save_status(uow.conn, order)
    await repository.record(uow.conn, [(order.order_id, entry.told_by(envelope.type, envelope.id))])
    log.info("order cancelled", order_id=order.order_id, actor=str(actor))
    return OrderWithTimeline(order, await repository.timeline(uow.conn, order_id))


async def order_with_timeline(conn: repository.Connection, order_id: str) -> OrderWithTimeline:
    order = await repository.get(conn, order_id)
    if order is None:
        raise OrderNotFound(order_id)
    return OrderWithTimeline(order, await repository.timeline(conn, order_id))


def inventory_outcome(event: Event, actor: Actor) -> tuple[str, TimelineEntry]:
    """What an inventory event means on the order's timeline. The status is left as it is."""
    data = event.data
    at: datetime = event.envelope.time
    if isinstance(data, StockReserved):
        entry = TimelineEntry(
            at=at,
            what="stock_reserved",
            actor=actor,
            reason="inventory reserved every line",
            details={"lines": [line.model_dump(mode="json") for line in data.lines]},
        )
    elif isinstance(data, ReservationFailed):
        entry = TimelineEntry(
            at=at,
            what="stock_reservation_failed",
            actor=actor,
            reason="not enough stock for "
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
            reason=data.reason,
            details={"lines": [line.model_dump(mode="json") for line in data.lines]},
        )
    else:
        raise TypeError(f"not an inventory outcome: {event.type}")
    return data.order_id, entry.told_by(event.type, event.id)


async def record_inventory_outcomes(
    uow: UnitOfWork, outcomes: Iterable[Event], actor: Actor
) -> None:
    """Record inventory outcomes on our orders' timelines, each event once per order."""
    by_order: dict[str, list[TimelineEntry]] = {}
    for event in outcomes:
        order_id, entry = inventory_outcome(event, actor)
        by_order.setdefault(order_id, []).append(entry)
    ours = await repository.known(uow.conn, by_order)
    for order_id in sorted(by_order.keys() - ours):
        # Inventory also serves orders placed by outside storefronts; they have no timeline here.
        log.info("inventory outcome for an order not placed here", order_id=order_id)
    await repository.record(
        uow.conn, [(order_id, entry) for order_id in sorted(ours) for entry in by_order[order_id]]
    )
