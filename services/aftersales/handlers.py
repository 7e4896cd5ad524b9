"""After-sales use cases: learn orders, open and move cases, attach evidence, issue refunds.

Every state change publishes its events in the same unit of work: case.opened / case.updated /
case.closed / refund.issued on aftersales.events, and notification.requested to the customer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from pydantic import BaseModel

from orderguard.services.aftersales import repository
from orderguard.services.aftersales.domain import (
    Actor,
    Case,
    CaseLine,
    KnownOrder,
    RefundLine,
    TimelineEntry,
    check_refund,
    customer_notice,
    new_id,
    next_state,
    order_lines,
)
from orderguard.services.aftersales.repository import Attachment, OrderFact, Refund
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.errors import Conflict, NotFound
from orderguard.shared.events import aftersales as events
from orderguard.shared.events.logistics import ShipmentDelivered, ShipmentExceptionReported
from orderguard.shared.events.orders import OrderPaid, OrderPlaced, OrderRefundRequested
from orderguard.shared.logging import get_logger
from orderguard.shared.topics import Topics
from orderguard.shared.uow import UnitOfWork

SOURCE = "/orderguard/aftersales"

# Only ids, types, states and amounts go to the logs: never the customer's phone.
log = get_logger(__name__)


class CaseNotFound(NotFound):
    def __init__(self, case_id: str) -> None:
        super().__init__("case", case_id)
        self.case_id = case_id


class OrderUnknown(NotFound):
    def __init__(self, order_id: str) -> None:
        super().__init__(
            "order",
            order_id,
            f"Aftersales has not learned of order {order_id} from orders.events (yet).",
        )
        self.order_id = order_id


class AlreadyRefunded(Conflict):
    """Some lines of the request were already refunded for the same action on this case."""

    def __init__(self, case_id: str, issued: list[tuple[str, str, str]]) -> None:
        sku, action, refund_id = issued[0]
        super().__init__(
            f"Case {case_id}: SKU {sku} was already refunded for {action} (refund {refund_id});"
            " each line is refunded once per action.",
            slug="already-refunded",
            title="Already refunded",
            case_id=case_id,
            refunded=[{"sku": s, "action": a, "refund_id": r} for s, a, r in issued],
        )
        self.case_id = case_id
        self.issued = issued


@dataclass(frozen=True, slots=True)
class OpenCase:
    order_id: str
    case_type: str
    lines: tuple[CaseLine, ...]
    reason: str | None
    priority: str
    channel: str | None


@dataclass(frozen=True, slots=True)
class CaseFile:
    """A case with everything shown about it."""

    case: Case
    timeline: list[TimelineEntry]
    attachments: list[Attachment]
    refunds: list[Refund]


@dataclass(frozen=True, slots=True)
class Announced:
    entries: list[TimelineEntry]  # told by their case.opened / case.updated
    envelopes: dict[type[BaseModel], Envelope]  # by event model


async def _announce(
    uow: UnitOfWork, topics: Topics, case: Case, entries: Sequence[TimelineEntry]
) -> Announced:
    """Publish the events the case recorded and tell the customer what concerns them. Each
    case.opened / case.updated tells the next of `entries` (the ones that announce a change);
    returns the told entries and the envelopes, by event type."""
    recorded = list(case.events)
    case.events.clear()
    pending = list(entries)
    told: list[TimelineEntry] = []
    envelopes: dict[type[BaseModel], Envelope] = {}
    looked_up, phone = False, None
    for data in recorded:
        envelope = uow.publish(topics.aftersales, data, source=SOURCE, subject=case.case_id)
        envelopes[type(data)] = envelope
        if isinstance(data, events.CaseOpened | events.CaseUpdated):
            told.append(pending.pop(0).told_by(envelope.type, envelope.id))
        notice = customer_notice(case, data)
        if notice is None:
            continue
        if not looked_up:
            order = await repository.get_order(uow.conn, case.order_id)
            looked_up, phone = True, order.phone if order else None
        uow.notify_customer(
            topics.notification_requests,
            notice,
            source=SOURCE,
            customer_id=case.customer_id,
            phone=phone,
        )
    assert not pending, "every entry given is announced by an event"
    return Announced(told, envelopes)


async def case_file(conn: repository.Connection, case_id: str) -> CaseFile:
    case = await repository.get_case(conn, case_id)
    if case is None:
        raise CaseNotFound(case_id)
    return CaseFile(
        case,
        await repository.timeline(conn, case_id),
        await repository.attachments(conn, case_id),
        await repository.refunds_of(conn, case_id),
    )


# -- learning orders -----------------------------------------------------------------------


async def apply_order_facts(uow: UnitOfWork, topics: Topics, facts: Iterable[Event]) -> None:
    """Order facts in their order: a paid order's refund request comes after its payment on
    the same partition, so what was paid is known when the refund is issued."""
    learning: list[Event] = []
    for event in facts:
        if isinstance(event.data, OrderRefundRequested):
            await learn_order_facts(uow, learning)
            learning = []
            await refund_cancelled_order(uow, topics, event.data)
        else:
            learning.append(event)
    await learn_order_facts(uow, learning)


async def apply_shipment_facts(uow: UnitOfWork, topics: Topics, facts: Iterable[Event]) -> None:
    """Deliveries are remembered; a parcel the carrier declared lost opens a case."""
    for event in facts:
        data = event.data
        if isinstance(data, ShipmentExceptionReported):
            if data.reason == "lost":
                await open_lost_parcel_case(uow, topics, data)
        else:
            await learn_order_facts(uow, [event])


async def learn_order_facts(uow: UnitOfWork, facts: Iterable[Event]) -> None:
    """Keep our own copy of orders (lines, prices, paid) and deliveries; idempotent by state."""
    orders: list[OrderFact] = []
    for event in facts:
        data = event.data
        if isinstance(data, OrderPlaced | OrderPaid):
            # Both tell the order; a payment also tells what was paid (the lines' shares).
            placed = data if isinstance(data, OrderPlaced) else None
            paid = data if isinstance(data, OrderPaid) else None
            orders.append(
                OrderFact(
                    order_id=data.order_id,
                    customer_id=data.customer_id,
                    channel=data.channel,
                    phone=data.phone,
                    total_amount=data.total_amount,
                    lines=order_lines(
                        ((ln.sku, ln.quantity, ln.unit_price) for ln in data.lines),
                        data.total_amount,
                        paid.paid_amount if paid else None,
                    ),
                    placed_at=placed.placed_at if placed else None,
                    paid_at=paid.paid_at if paid else None,
                    paid_amount=paid.paid_amount if paid else None,
                    payment_id=paid.payment_id if paid else None,
                )
            )
        elif isinstance(data, ShipmentDelivered):
            await repository.remember_delivery(
                uow.conn, data.order_id, data.shipment_id, data.delivered_at
            )
    if orders:
        await repository.remember_orders(uow.conn, orders)


# -- cases ---------------------------------------------------------------------------------


async def open_case(
    uow: UnitOfWork,
    topics: Topics,
    command: OpenCase,
    actor: Actor,
    return_window_days: int,
    first_response_s: float | None,
) -> CaseFile:
    order = await repository.get_order(uow.conn, command.order_id)
    if order is None:
        raise OrderUnknown(command.order_id)
    case, entries = Case.open(
        case_id=new_id("case"),
        order=order,
        case_type=command.case_type,
        lines=command.lines,
        reason=command.reason,
        priority=command.priority,
        channel=command.channel,
        actor=actor,
        now=uow.now,
        return_window_days=return_window_days,
        first_response_s=first_response_s,
    )
    # The opening, and the policy's auto-approval (a state change too), are announced.
    announced = [e for n, e in enumerate(entries) if n == 0 or e.from_state is not None]
    told = iter((await _announce(uow, topics, case, announced)).entries)
    entries = [
        next(told) if n == 0 or e.from_state is not None else e for n, e in enumerate(entries)
    ]
    await repository.add_case(uow.conn, case)
    await repository.record(uow.conn, case.case_id, entries)
    log.info(
        "case opened",
        case_id=case.case_id,
        order_id=case.order_id,
        case_type=case.case_type,
        state=case.state,
        needs_review=case.needs_review,
    )
    return CaseFile(case, entries, [], [])


async def _locked_case(uow: UnitOfWork, case_id: str) -> Case:
    case = await repository.get_case(uow.conn, case_id, for_update=True)
    if case is None:
        raise CaseNotFound(case_id)
    return case


async def act_on_case(
    uow: UnitOfWork,
    topics: Topics,
    case_id: str,
    action: str,
    actor: Actor,
    note: str | None,
    resolution: str | None = None,
    satisfaction: int | None = None,
) -> CaseFile:
    """Move a case along its flow; IllegalTransition names its current state."""
    case = await _locked_case(uow, case_id)
    entry = case.apply(
        action, actor, uow.now, note, resolution=resolution, satisfaction=satisfaction
    )
    [entry] = (await _announce(uow, topics, case, [entry])).entries
    await repository.save_case(uow.conn, case)
    await repository.record(uow.conn, case_id, [entry])
    log.info("case moved", case_id=case_id, action=action, state=case.state)
    return await case_file(uow.conn, case_id)


async def comment_on_case(
    uow: UnitOfWork, topics: Topics, case_id: str, actor: Actor, note: str
) -> CaseFile:
    case = await _locked_case(uow, case_id)
    [entry] = (await _announce(uow, topics, case, [case.comment(actor, uow.now, note)])).entries
    await repository.save_case(uow.conn, case)
    await repository.record(uow.conn, case_id, [entry])
    return await case_file(uow.conn, case_id)


async def attach_evidence(
    uow: UnitOfWork,
    attachment: Attachment,
    content: bytes | None = None,
    actor: Actor | None = None,
) -> tuple[Attachment, bool]:
    """Attach evidence once per case and content: the same bytes again (a retried upload)
    return the attachment already there, and False. `content`: the uploaded bytes, stored in
    the database with the attachment (durable, backed up with it). `actor`: who attached it
    on the timeline (default: staff named by `uploaded_by`)."""
    case = await _locked_case(uow, attachment.case_id)
    existing = await repository.attachment_with(uow.conn, case.case_id, attachment.sha256)
    if existing is not None:
        return existing, False
    entry = TimelineEntry(
        at=uow.now,
        what="evidence_attached",
        actor=actor or Actor("staff", attachment.uploaded_by),
        note=attachment.filename,
        details={
            "attachment_id": attachment.attachment_id,
            "content_type": attachment.content_type,
            "size_bytes": attachment.size_bytes,
            "sha256": attachment.sha256,
        },
    )
    await repository.add_attachment(uow.conn, attachment)
    if content is not None:
        await repository.add_attachment_content(uow.conn, attachment.attachment_id, content)
    await repository.record(uow.conn, case.case_id, [entry])
    return attachment, True


# -- refunds -------------------------------------------------------------------------------


async def issue_refund(
    uow: UnitOfWork,
    topics: Topics,
    case_id: str,
    lines: Sequence[RefundLine],
    reason: str,
    actor: Actor,
) -> tuple[Refund, CaseFile]:
    """Refund lines of a case's order: within what was paid for each line minus what was
    refunded already, once per case, line and action (the unique constraint backs this)."""
    case = await _locked_case(uow, case_id)
    next_state(case.case_id, case.case_type, case.state, "refund")  # 409 before anything else
    # The order's row lock serialises refunds of one order across its cases.
    order = await repository.get_order(uow.conn, case.order_id, for_update=True)
    if order is None:
        raise OrderUnknown(case.order_id)
    issued = await repository.issued_lines(uow.conn, case_id, lines)
    if issued:
        raise AlreadyRefunded(case_id, issued)
    refunded = await repository.refunded_by_sku(uow.conn, order.order_id)
    refund = _priced_refund(uow, order, case_id, lines, refunded, reason, actor)
    await repository.add_refund(uow.conn, refund)
    moved = case.refund(refund.refund_id, lines, refund.amount, reason, actor, uow.now)
    announced = await _announce(uow, topics, case, [moved])
    [entry] = announced.entries
    refund_event = announced.envelopes[events.RefundIssued]
    details = {"refund_id": refund.refund_id, "refund_event_id": refund_event.id, **entry.details}
    entry = replace(entry, details=details)
    await repository.save_case(uow.conn, case)
    await repository.record(uow.conn, case_id, [entry])
    log.info(
        "refund issued",
        case_id=case_id,
        order_id=order.order_id,
        refund_id=refund.refund_id,
        amount=str(refund.amount),
    )
    return refund, await case_file(uow.conn, case_id)


def _priced_refund(
    uow: UnitOfWork,
    order: KnownOrder,
    case_id: str,
    lines: Sequence[RefundLine],
    refunded: Mapping[str, Decimal],
    reason: str,
    actor: Actor,
) -> Refund:
    """A refund of `lines`, priced within what was paid for each less what was refunded."""
    return Refund(
        refund_id=new_id("rf"),
        case_id=case_id,
        order_id=order.order_id,
        customer_id=order.customer_id,
        amount=check_refund(order, lines, refunded),
        reason=reason,
        issued_by=str(actor),
        issued_at=uow.now,
        lines=tuple(lines),
    )


CANCELLATION = Actor("consumer", "order-cancellation")


async def refund_cancelled_order(
    uow: UnitOfWork, topics: Topics, asked: OrderRefundRequested
) -> Case | None:
    """A paid order was cancelled: a refund case for all its lines, approved by the
    cancellation, refunds what was paid (less what earlier cases refunded). Once per order:
    the case id is the order's, so the request told again finds it."""
    case_id = f"case_cancel_{asked.order_id}"
    if await repository.get_case(uow.conn, case_id) is not None:
        return None
    order = await repository.get_order(uow.conn, asked.order_id, for_update=True)
    if order is None or order.paid_amount is None:
        log.warning("refund asked for an order not known as paid", order_id=asked.order_id)
        return None
    refunded = await repository.refunded_by_sku(uow.conn, order.order_id)
    lines = [
        RefundLine(ln.sku, ln.quantity, ln.paid - refunded.get(ln.sku, Decimal(0)), "return")
        for ln in order.lines
        if ln.paid > refunded.get(ln.sku, Decimal(0))
    ]
    if not lines:
        return None  # earlier cases refunded everything
    case, entries = Case.open(
        case_id=case_id,
        order=order,
        case_type="refund",
        lines=[CaseLine(ln.sku, ln.quantity) for ln in lines],
        reason=f"order cancelled after payment: {asked.reason}",
        priority="P3",
        channel=None,
        actor=CANCELLATION,
        now=uow.now,
        return_window_days=0,
        first_response_s=None,
    )
    entries.append(case.apply("approve", CANCELLATION, uow.now, "nothing shipped: refund in full"))
    refund = _priced_refund(uow, order, case_id, lines, refunded, case.reason, CANCELLATION)
    entries.append(
        case.refund(refund.refund_id, lines, refund.amount, case.reason, CANCELLATION, uow.now)
    )
    told = (await _announce(uow, topics, case, entries)).entries
    await repository.add_case(uow.conn, case)
    await repository.add_refund(uow.conn, refund)
    await repository.record(uow.conn, case_id, told)
    log.info(
        "cancelled order refunded",
        case_id=case_id,
        order_id=order.order_id,
        refund_id=refund.refund_id,
        amount=str(refund.amount),
    )
    return case


LOST_PARCEL = Actor("consumer", "lost-parcel")


async def open_lost_parcel_case(
    uow: UnitOfWork, topics: Topics, lost: ShipmentExceptionReported
) -> Case | None:
    """The carrier declared the parcel lost: a refund case on all the order's lines, waiting
    for customer service to re-ship (reject, noting the new shipment) or refund (approve, then
    refund). Once per shipment: the case id is the shipment's."""
    case_id = f"case_lost_{lost.shipment_id}"
    if await repository.get_case(uow.conn, case_id) is not None:
        return None
    order = await repository.get_order(uow.conn, lost.order_id)
    if order is None:
        log.warning("lost parcel of an order not known here", order_id=lost.order_id)
        return None
    case, entries = Case.open(
        case_id=case_id,
        order=order,
        case_type="refund",
        lines=[CaseLine(ln.sku, ln.quantity) for ln in order.lines],
        reason=(
            f"parcel lost by {lost.carrier} ({lost.tracking_number}, shipment"
            f" {lost.shipment_id}): re-ship or refund"
        ),
        priority="P2",
        channel=None,
        actor=LOST_PARCEL,
        now=uow.now,
        return_window_days=0,
        first_response_s=None,
    )
    told = (await _announce(uow, topics, case, entries)).entries
    await repository.add_case(uow.conn, case)
    await repository.record(uow.conn, case_id, told)
    log.info("lost parcel case opened", case_id=case_id, order_id=order.order_id)
    return case
