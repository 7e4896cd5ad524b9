"""After-sales use cases: learn orders, open and move cases, attach evidence, issue refunds.

Every state change publishes its events in the same unit of work: case.opened / case.updated /
case.closed / refund.issued on aftersales.events, and notification.requested to the customer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from orderguard.services.aftersales import repository
from orderguard.services.aftersales.domain import (
    Actor,
    Case,
    CaseLine,
    RefundLine,
    TimelineEntry,
    check_refund,
    new_id,
    next_state,
    order_lines,
)
from orderguard.services.aftersales.repository import Attachment, Refund
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.errors import Conflict, NotFound
from orderguard.shared.events import aftersales as events
from orderguard.shared.events.logistics import ShipmentDelivered
from orderguard.shared.events.notifications import NotificationRequested, Recipient
from orderguard.shared.events.orders import OrderPaid, OrderPlaced
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


def _publish(uow: UnitOfWork, topic: str, subject: str, data: BaseModel) -> Envelope:
    return uow.publish_event(topic, data, source=SOURCE, subject=subject)


async def _notify(
    uow: UnitOfWork,
    topic: str,
    case: Case,
    template: str,
    request_id: str,
    params: dict[str, str],
) -> None:
    order = await repository.get_order(uow.conn, case.order_id)
    _publish(
        uow,
        topic,
        case.customer_id,
        NotificationRequested(
            request_id=request_id,
            recipient=Recipient(
                kind="customer", id=case.customer_id, phone=order.phone if order else None
            ),
            template=template,
            params=params,
            requested_at=uow.now,
        ),
    )


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


async def learn_order_facts(uow: UnitOfWork, facts: Iterable[Event]) -> None:
    """Keep our own copy of orders (lines, prices, paid) and deliveries; idempotent by state."""
    for event in facts:
        data = event.data
        if isinstance(data, OrderPlaced):
            await repository.remember_order(
                uow.conn,
                order_id=data.order_id,
                customer_id=data.customer_id,
                channel=data.channel,
                phone=data.phone,
                total_amount=data.total_amount,
                lines=order_lines(
                    ((ln.sku, ln.quantity, ln.unit_price) for ln in data.lines),
                    data.total_amount,
                    None,
                ),
                placed_at=data.placed_at,
            )
        elif isinstance(data, OrderPaid):
            await repository.remember_order(
                uow.conn,
                order_id=data.order_id,
                customer_id=data.customer_id,
                channel=data.channel,
                phone=data.phone,
                total_amount=data.total_amount,
                lines=order_lines(
                    ((ln.sku, ln.quantity, ln.unit_price) for ln in data.lines),
                    data.total_amount,
                    data.paid_amount,
                ),
                paid_at=data.paid_at,
                paid_amount=data.paid_amount,
                payment_id=data.payment_id,
            )
        elif isinstance(data, ShipmentDelivered):
            await repository.remember_delivery(
                uow.conn, data.order_id, data.shipment_id, data.delivered_at
            )


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
    opened = _publish(
        uow,
        topics.aftersales,
        case.case_id,
        events.CaseOpened(
            case_id=case.case_id,
            order_id=case.order_id,
            customer_id=case.customer_id,
            case_type=case.case_type,  # type: ignore[arg-type]
            channel=case.channel,
            lines=[events.CaseLine(sku=ln.sku, quantity=ln.quantity) for ln in case.lines],
            reason=case.reason,
            priority=case.priority,  # type: ignore[arg-type]
            opened_at=case.opened_at,
        ),
    )
    entries[0] = entries[0].told_by(opened.type, opened.id)
    for n, entry in enumerate(entries[1:], start=1):
        if entry.from_state is not None:  # the policy's auto-approval is a state change too
            entries[n] = await _tell_update(uow, topics, case, entry)
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


async def _tell_update(
    uow: UnitOfWork, topics: Topics, case: Case, entry: TimelineEntry
) -> TimelineEntry:
    """case.updated (and case.closed when it closed) for a timeline entry; the customer is told
    of every state change."""
    updated = _publish(
        uow,
        topics.aftersales,
        case.case_id,
        events.CaseUpdated(
            case_id=case.case_id,
            order_id=case.order_id,
            customer_id=case.customer_id,
            case_type=case.case_type,  # type: ignore[arg-type]
            action=entry.what,
            from_state=entry.from_state or case.state,
            to_state=entry.to_state or case.state,
            actor=str(entry.actor),
            responded=entry.actor.kind == "staff",
            priority=case.priority,  # type: ignore[arg-type]
            note=entry.note,
            updated_at=entry.at,
        ),
    )
    if entry.to_state is not None and entry.to_state != entry.from_state:
        await _notify(
            uow,
            topics.notification_requests,
            case,
            "case.updated",
            f"case.updated:{case.case_id}:{case.version}",
            {
                "case_id": case.case_id,
                "order_id": case.order_id,
                "case_type": case.case_type,
                "status": entry.to_state,
            },
        )
    if entry.to_state == "closed":
        _publish(
            uow,
            topics.aftersales,
            case.case_id,
            events.CaseClosed(
                case_id=case.case_id,
                order_id=case.order_id,
                customer_id=case.customer_id,
                case_type=case.case_type,  # type: ignore[arg-type]
                resolution=case.resolution or "closed",
                closed_at=entry.at,
            ),
        )
    return entry.told_by(updated.type, updated.id)


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
    entry = await _tell_update(uow, topics, case, entry)
    await repository.save_case(uow.conn, case)
    await repository.record(uow.conn, case_id, [entry])
    log.info("case moved", case_id=case_id, action=action, state=case.state)
    return await case_file(uow.conn, case_id)


async def comment_on_case(
    uow: UnitOfWork, topics: Topics, case_id: str, actor: Actor, note: str
) -> CaseFile:
    case = await _locked_case(uow, case_id)
    entry = await _tell_update(uow, topics, case, case.comment(actor, uow.now, note))
    await repository.save_case(uow.conn, case)
    await repository.record(uow.conn, case_id, [entry])
    return await case_file(uow.conn, case_id)


async def attach_evidence(uow: UnitOfWork, attachment: Attachment) -> tuple[Attachment, bool]:
    """Attach evidence once per case and content: the same bytes again (a retried upload)
    return the attachment already there, and False."""
    case = await _locked_case(uow, attachment.case_id)
    existing = await repository.attachment_with(uow.conn, case.case_id, attachment.sha256)
    if existing is not None:
        return existing, False
    entry = TimelineEntry(
        at=uow.now,
        what="evidence_attached",
        actor=Actor("staff", attachment.uploaded_by),
        note=attachment.filename,
        details={
            "attachment_id": attachment.attachment_id,
            "content_type": attachment.content_type,
            "size_bytes": attachment.size_bytes,
            "sha256": attachment.sha256,
        },
    )
    await repository.add_attachment(uow.conn, attachment)
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
    amount = check_refund(order, lines, await repository.refunded_by_sku(uow.conn, order.order_id))
    refund = Refund(
        refund_id=new_id("rf"),
        case_id=case_id,
        order_id=order.order_id,
        customer_id=order.customer_id,
        amount=amount,
        reason=reason,
        issued_by=str(actor),
        issued_at=uow.now,
        lines=tuple(lines),
    )
    await repository.add_refund(uow.conn, refund)
    published = _publish(
        uow,
        topics.aftersales,
        case_id,
        events.RefundIssued(
            case_id=case_id,
            refund_id=refund.refund_id,
            order_id=order.order_id,
            customer_id=order.customer_id,
            channel=case.channel,
            lines=[
                events.RefundedLine(sku=ln.sku, quantity=ln.quantity, amount=ln.amount)
                for ln in lines
            ],
            amount=amount,
            reason=reason,
            issued_at=uow.now,
        ),
    )
    await _notify(
        uow,
        topics.notification_requests,
        case,
        "refund.issued",
        f"refund.issued:{refund.refund_id}",
        {"order_id": order.order_id, "amount": str(amount)},
    )
    entry = case.apply("refund", actor, uow.now, reason)
    entry = TimelineEntry(
        at=entry.at,
        what="refund",
        actor=actor,
        note=reason,
        from_state=entry.from_state,
        to_state=entry.to_state,
        details={
            "refund_id": refund.refund_id,
            "refund_event_id": published.id,
            "amount": str(amount),
            "lines": [
                {"sku": ln.sku, "action": ln.action, "amount": str(ln.amount)} for ln in lines
            ],
        },
    )
    entry = await _tell_update(uow, topics, case, entry)
    await repository.save_case(uow.conn, case)
    await repository.record(uow.conn, case_id, [entry])
    log.info(
        "refund issued",
        case_id=case_id,
        order_id=order.order_id,
        refund_id=refund.refund_id,
        amount=str(amount),
    )
    return refund, await case_file(uow.conn, case_id)
