"""After-sales cases, their flows, the return policy and refund caps. Pure: no I/O, no framework.

Each case type has its own state machine (`FLOWS`): a map of state -> action -> next state. An
action not allowed in the current state raises `IllegalTransition`, naming the state. Each change
records the events it implies on `Case.events`; the use case publishes them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal, TypeAlias

from orderguard.shared.actor import Actor
from orderguard.shared.errors import IllegalTransition, Invalid
from orderguard.shared.events import aftersales as contract
from orderguard.shared.events.notifications import CustomerNotice
from orderguard.shared.timeline import TimelineEntry

CaseType = Literal["return", "exchange", "refund", "repair", "complaint"]
CASE_TYPES: tuple[CaseType, ...] = ("return", "exchange", "refund", "repair", "complaint")
Priority = Literal["P1", "P2", "P3", "P4"]
# What a refund line is for: the goods sent back, a partial refund while the customer keeps
# them, or a compensation. Each is issued at most once per case and order line.
RefundAction = Literal["return", "partial", "compensation"]

CENT = Decimal("0.01")

# Per case type: state -> {action: next state}. The first state is where a case starts.
FLOWS: dict[str, dict[str, dict[str, str]]] = {
    "return": {
        "requested": {"approve": "approved", "reject": "rejected"},
        "approved": {"receive_goods": "goods_received", "reject": "rejected"},
        "goods_received": {"refund": "refunded"},
        "refunded": {"refund": "refunded", "close": "closed"},
        "rejected": {"close": "closed"},
        "closed": {},
    },
    "refund": {
        "requested": {"approve": "approved", "reject": "rejected"},
        "approved": {"refund": "refunded"},
        "refunded": {"refund": "refunded", "close": "closed"},
        "rejected": {"close": "closed"},
        "closed": {},
    },
    "exchange": {
        "requested": {"approve": "approved", "reject": "rejected"},
        "approved": {"receive_goods": "goods_received"},
        "goods_received": {"ship_replacement": "replacement_shipped"},
        "replacement_shipped": {"close": "closed"},
        "rejected": {"close": "closed"},
        "closed": {},
    },
    "repair": {
        "requested": {"approve": "approved", "reject": "rejected"},
        "approved": {"receive_goods": "in_repair"},
        "in_repair": {"finish_repair": "repaired"},
        "repaired": {"return_to_customer": "returned_to_customer"},
        "returned_to_customer": {"close": "closed"},
        "rejected": {"close": "closed"},
        "closed": {},
    },
    # intake -> evidence -> investigation -> resolution -> feedback, then a follow-up visit and
    # a satisfaction score (which closes the complaint). A refund may settle the resolution.
    "complaint": {
        "intake": {"collect_evidence": "evidence"},
        "evidence": {"investigate": "investigation"},
        "investigation": {"resolve": "resolution"},
        "resolution": {"refund": "resolution", "request_feedback": "feedback"},
        "feedback": {"visit": "follow_up"},
        "follow_up": {"score": "closed"},
        "closed": {},
    },
}

STAFF_ACTIONS = frozenset(
    action for flow in FLOWS.values() for moves in flow.values() for action in moves
)


def initial_state(case_type: str) -> str:
    return next(iter(FLOWS[case_type]))


def allowed_actions(case_type: str, state: str) -> list[str]:
    return list(FLOWS[case_type][state])


def illegal_transition(
    case_id: str, case_type: str, current: str, action: str
) -> IllegalTransition:
    """The action is not allowed now: names the current state and where it would be allowed."""
    return IllegalTransition(
        "case",
        case_id,
        current,
        action,
        allowed_actions(case_type, current),
        sorted(s for s, moves in FLOWS[case_type].items() if action in moves),
        kind=case_type,
    )


class InvalidCase(Invalid):
    """A request that can never be right as it stands (a 422): `details` name what is wrong."""

    def __init__(self, slug: str, message: str, **details: Any) -> None:
        super().__init__(message, slug=slug, **details)


def next_state(case_id: str, case_type: str, current: str, action: str) -> str:
    found = FLOWS[case_type].get(current, {}).get(action)
    if found is None:
        raise illegal_transition(case_id, case_type, current, action)
    return found


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


# -- what aftersales knows of an order ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One SKU of an order: units and what was paid for them (lines of a SKU are summed)."""

    sku: str
    quantity: int
    amount: Decimal  # list price of the units
    paid: Decimal  # the share of the paid amount, in yuan


@dataclass(frozen=True, slots=True)
class KnownOrder:
    order_id: str
    customer_id: str
    channel: str
    lines: tuple[OrderLine, ...]
    placed_at: datetime | None
    paid_at: datetime | None
    paid_amount: Decimal | None
    delivered_at: datetime | None
    phone: str | None = None

    def line(self, sku: str) -> OrderLine | None:
        return next((line for line in self.lines if line.sku == sku), None)

    @property
    def received_at(self) -> datetime | None:
        """When the customer had the goods: delivery when logistics told us, else payment."""
        return self.delivered_at or self.paid_at


def order_lines(
    lines: Iterable[tuple[str, int, Decimal]], total: Decimal, paid: Decimal | None
) -> tuple[OrderLine, ...]:
    """(sku, quantity, unit price) rows -> one line per SKU, the paid amount shared out by list
    price (to the cent, the remainder on the last line) so the lines' paid sum to `paid`."""
    by_sku: dict[str, tuple[int, Decimal]] = {}
    for sku, quantity, unit_price in lines:
        units, amount = by_sku.get(sku, (0, Decimal(0)))
        by_sku[sku] = (units + quantity, amount + unit_price * quantity)
    paid_total = Decimal(0) if paid is None else paid
    result: list[OrderLine] = []
    shared = Decimal(0)
    skus = sorted(by_sku)
    for n, sku in enumerate(skus):
        units, amount = by_sku[sku]
        if n == len(skus) - 1:
            share = paid_total - shared
        elif total > 0:
            share = (paid_total * amount / total).quantize(CENT, ROUND_HALF_UP)
        else:
            share = Decimal(0)
        shared += share
        result.append(OrderLine(sku, units, amount, share))
    return tuple(result)


# -- cases ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseLine:
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class PolicyCheck:
    """The outcome of the return policy for one request."""

    within_window: bool
    window_days: int
    received_at: datetime | None
    window_ends_at: datetime | None
    needs_review: bool
    auto_approved: bool
    explanation: str


def check_return_policy(
    order: KnownOrder, reason: str | None, window_days: int, now: datetime
) -> PolicyCheck:
    """ "N days, no reason": within N days of delivery (payment when delivery is unknown) a
    return is approved at once, reason or not. Later it needs a reason and waits for review.
    """
    received = order.received_at
    if received is None:
        raise InvalidCase(
            "order-not-paid",
            f"Order {order.order_id} has not been paid: there is nothing to return yet.",
            order_id=order.order_id,
        )
    ends = received + timedelta(days=window_days)
    basis = "delivery" if order.delivered_at is not None else "payment (delivery not known)"
    if now <= ends:
        return PolicyCheck(
            True,
            window_days,
            received,
            ends,
            needs_review=False,
            auto_approved=True,
            explanation=f"within {window_days} days of {basis}: approved without a reason",
        )
    if not reason:
        raise InvalidCase(
            "reason-required",
            f"The {window_days}-day no-reason return window ended at {ends.isoformat()}"
            f" ({window_days} days after {basis}); a return after it needs a reason.",
            window_ends_at=ends.isoformat(),
            window_days=window_days,
        )
    return PolicyCheck(
        False,
        window_days,
        received,
        ends,
        needs_review=True,
        auto_approved=False,
        explanation=f"after the {window_days}-day window ({basis}): flagged for review",
    )


def validate_case_lines(order: KnownOrder, lines: Sequence[CaseLine]) -> tuple[CaseLine, ...]:
    """Each SKU once, each in the order, never more units than were ordered."""
    seen: set[str] = set()
    for line in lines:
        if line.sku in seen:
            raise InvalidCase("duplicate-line", f"SKU {line.sku} is listed twice.", sku=line.sku)
        seen.add(line.sku)
        ordered = order.line(line.sku)
        if ordered is None:
            raise InvalidCase(
                "line-not-in-order",
                f"Order {order.order_id} has no line for SKU {line.sku}.",
                sku=line.sku,
                order_skus=[known.sku for known in order.lines],
            )
        if line.quantity > ordered.quantity:
            raise InvalidCase(
                "quantity-above-ordered",
                f"SKU {line.sku}: {line.quantity} units asked, {ordered.quantity} were ordered.",
                sku=line.sku,
                ordered=ordered.quantity,
                requested=line.quantity,
            )
    return tuple(lines)


@dataclass(slots=True)
class Case:
    case_id: str
    order_id: str
    customer_id: str
    channel: str | None
    case_type: str
    state: str
    priority: str
    reason: str
    lines: tuple[CaseLine, ...]
    needs_review: bool
    opened_at: datetime
    updated_at: datetime
    first_response_due_at: datetime | None = None
    first_response_at: datetime | None = None
    closed_at: datetime | None = None
    resolution: str | None = None
    satisfaction: int | None = None
    policy: Mapping[str, Any] = field(default_factory=dict)
    version: int = 1
    # What the changes since the last publish imply, in order (not stored).
    events: list[CaseEvent] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def open(
        cls,
        *,
        case_id: str,
        order: KnownOrder,
        case_type: str,
        lines: Sequence[CaseLine],
        reason: str | None,
        priority: str,
        channel: str | None,
        actor: Actor,
        now: datetime,
        return_window_days: int,
        first_response_s: float | None,
    ) -> tuple[Case, list[TimelineEntry]]:
        if case_type not in FLOWS:
            raise InvalidCase("unknown-case-type", f"Unknown case type {case_type}.")
        checked = validate_case_lines(order, lines)
        if case_type in ("return", "exchange", "refund", "repair") and not checked:
            raise InvalidCase(
                "lines-required", f"A {case_type} case names the order lines it is about."
            )
        policy: PolicyCheck | None = None
        if case_type == "return":
            policy = check_return_policy(order, reason, return_window_days, now)
        if case_type != "return" and not reason:
            raise InvalidCase("reason-required", f"A {case_type} case needs a reason.")
        case = cls(
            case_id=case_id,
            order_id=order.order_id,
            customer_id=order.customer_id,
            channel=channel or order.channel,
            case_type=case_type,
            state=initial_state(case_type),
            priority=priority,
            reason=reason or "no reason given (within the no-reason return window)",
            lines=checked,
            needs_review=bool(policy and policy.needs_review),
            opened_at=now,
            updated_at=now,
            first_response_due_at=(
                now + timedelta(seconds=first_response_s) if first_response_s is not None else None
            ),
            policy=_policy_details(policy) if policy else {},
        )
        entries = [
            TimelineEntry(
                at=now,
                what="opened",
                actor=actor,
                note=case.reason,
                to_state=case.state,
                details={"lines": [{"sku": ln.sku, "quantity": ln.quantity} for ln in checked]},
            )
        ]
        case.events.append(
            contract.CaseOpened(
                case_id=case.case_id,
                order_id=case.order_id,
                customer_id=case.customer_id,
                case_type=case_type,
                channel=case.channel,
                lines=[contract.CaseLine(sku=ln.sku, quantity=ln.quantity) for ln in checked],
                reason=case.reason,
                priority=priority,
                opened_at=now,
            )
        )
        if policy is not None:
            if policy.auto_approved:
                approver = Actor("policy", "return-window")
                entries.append(case.apply("approve", approver, now, policy.explanation))
            else:
                entries.append(
                    TimelineEntry(
                        at=now,
                        what="flagged_for_review",
                        actor=Actor("policy", "return-window"),
                        note=policy.explanation,
                        details=dict(case.policy),
                    )
                )
        return case, entries

    def allowed_actions(self) -> list[str]:
        return allowed_actions(self.case_type, self.state)

    def apply(
        self,
        action: str,
        actor: Actor,
        now: datetime,
        note: str | None,
        *,
        resolution: str | None = None,
        satisfaction: int | None = None,
    ) -> TimelineEntry:
        """Move the case by `action`; IllegalTransition (naming the current state) otherwise."""
        before = self.state
        after = next_state(self.case_id, self.case_type, before, action)
        if action == "score":
            if satisfaction is None or not 1 <= satisfaction <= 5:
                raise InvalidCase(
                    "satisfaction-required", "A satisfaction score from 1 to 5 closes a complaint."
                )
            self.satisfaction = satisfaction
        if action == "resolve" and not (resolution or note):
            raise InvalidCase("resolution-required", "Say how the complaint was resolved.")
        if resolution or action == "resolve":
            self.resolution = resolution or note
        if action == "approve":
            self.needs_review = False
        self.state = after
        self.updated_at = now
        self.version += 1
        if actor.kind == "staff" and self.first_response_at is None:
            self.first_response_at = now
        if after == "closed":
            self.closed_at = now
            self.resolution = self.resolution or resolution or note or before
        details: dict[str, Any] = {"action": action}
        if satisfaction is not None:
            details["satisfaction"] = satisfaction
        return self._updated(
            TimelineEntry(
                at=now,
                what=action,
                actor=actor,
                note=note,
                from_state=before,
                to_state=after,
                details=details,
            )
        )

    def comment(self, actor: Actor, now: datetime, note: str) -> TimelineEntry:
        """An agent's comment: no state change, but a first response all the same."""
        if self.state == "closed":
            raise illegal_transition(self.case_id, self.case_type, self.state, "comment")
        self.updated_at = now
        self.version += 1
        if actor.kind == "staff" and self.first_response_at is None:
            self.first_response_at = now
        return self._updated(TimelineEntry(at=now, what="comment", actor=actor, note=note))

    def refund(
        self,
        refund_id: str,
        lines: Sequence[RefundLine],
        amount: Decimal,
        reason: str,
        actor: Actor,
        now: datetime,
    ) -> TimelineEntry:
        """A refund issued on this case (refund.issued.v1), then the case moves by `refund`."""
        next_state(self.case_id, self.case_type, self.state, "refund")  # nothing recorded if not
        self.events.append(
            contract.RefundIssued(
                case_id=self.case_id,
                refund_id=refund_id,
                order_id=self.order_id,
                customer_id=self.customer_id,
                channel=self.channel,
                lines=[
                    contract.RefundedLine(sku=ln.sku, quantity=ln.quantity, amount=ln.amount)
                    for ln in lines
                ],
                amount=amount,
                reason=reason,
                issued_at=now,
            )
        )
        moved = self.apply("refund", actor, now, reason)
        return replace(
            moved,
            details={
                "refund_id": refund_id,
                "amount": str(amount),
                "lines": [
                    {"sku": ln.sku, "action": ln.action, "amount": str(ln.amount)} for ln in lines
                ],
            },
        )

    def _updated(self, entry: TimelineEntry) -> TimelineEntry:
        """Record case.updated for a change (and case.closed when it closed the case)."""
        self.events.append(
            contract.CaseUpdated(
                case_id=self.case_id,
                order_id=self.order_id,
                customer_id=self.customer_id,
                case_type=self.case_type,
                action=entry.what,
                from_state=entry.from_state or self.state,
                to_state=entry.to_state or self.state,
                actor=str(entry.actor),
                responded=entry.actor.kind == "staff",
                priority=self.priority,
                note=entry.note,
                updated_at=entry.at,
            )
        )
        if entry.to_state == "closed":
            self.events.append(
                contract.CaseClosed(
                    case_id=self.case_id,
                    order_id=self.order_id,
                    customer_id=self.customer_id,
                    case_type=self.case_type,
                    resolution=self.resolution or "closed",
                    closed_at=entry.at,
                )
            )
        return entry


CaseEvent: TypeAlias = (
    contract.CaseOpened | contract.CaseUpdated | contract.CaseClosed | contract.RefundIssued
)


def customer_notice(case: Case, event: CaseEvent) -> CustomerNotice | None:
    """What the customer is told of a case event: every state change, and a refund."""
    if isinstance(event, contract.CaseUpdated) and event.to_state != event.from_state:
        return CustomerNotice(
            "case.updated",
            f"case.updated:{case.case_id}:{case.version}",
            {
                "case_id": case.case_id,
                "order_id": case.order_id,
                "case_type": case.case_type,
                "status": event.to_state,
            },
        )
    if isinstance(event, contract.RefundIssued):
        return CustomerNotice(
            "refund.issued",
            f"refund.issued:{event.refund_id}",
            {"order_id": event.order_id, "amount": str(event.amount)},
        )
    return None


def _policy_details(policy: PolicyCheck) -> dict[str, Any]:
    return {
        "window_days": policy.window_days,
        "within_window": policy.within_window,
        "received_at": policy.received_at.isoformat() if policy.received_at else None,
        "window_ends_at": policy.window_ends_at.isoformat() if policy.window_ends_at else None,
        "needs_review": policy.needs_review,
        "explanation": policy.explanation,
    }


# -- refunds -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefundLine:
    sku: str
    quantity: int
    amount: Decimal
    action: str


class RefundAboveCap(InvalidCase):
    pass


def check_refund(
    order: KnownOrder,
    lines: Sequence[RefundLine],
    refunded: Mapping[str, Decimal],
) -> Decimal:
    """The refund's total, if every line stays within what was paid for it minus what was
    already refunded for it (on any case of the order); RefundAboveCap names the line otherwise."""
    if order.paid_at is None or order.paid_amount is None:
        raise InvalidCase(
            "order-not-paid",
            f"Order {order.order_id} has not been paid: there is nothing to refund.",
            order_id=order.order_id,
        )
    total = Decimal(0)
    seen: set[tuple[str, str]] = set()
    asked: dict[str, Decimal] = {}
    for line in lines:
        if (line.sku, line.action) in seen:
            raise InvalidCase(
                "duplicate-line",
                f"SKU {line.sku} is listed twice for {line.action}.",
                sku=line.sku,
                action=line.action,
            )
        seen.add((line.sku, line.action))
        known = order.line(line.sku)
        if known is None:
            raise InvalidCase(
                "line-not-in-order",
                f"Order {order.order_id} has no line for SKU {line.sku}.",
                sku=line.sku,
            )
        if line.quantity > known.quantity:
            raise InvalidCase(
                "quantity-above-ordered",
                f"SKU {line.sku}: {line.quantity} units to refund, {known.quantity} were ordered.",
                sku=line.sku,
                ordered=known.quantity,
                requested=line.quantity,
            )
        already = refunded.get(line.sku, Decimal(0))
        left = known.paid - already - asked.get(line.sku, Decimal(0))
        if line.amount > left:
            raise RefundAboveCap(
                "refund-above-paid",
                f"SKU {line.sku}: {line.amount} asked, but {known.paid} was paid for this line"
                f" and {already} already refunded; at most {max(left, Decimal(0))} is left.",
                sku=line.sku,
                requested=str(line.amount),
                paid=str(known.paid),
                already_refunded=str(already),
                remaining=str(max(left, Decimal(0))),
            )
        asked[line.sku] = asked.get(line.sku, Decimal(0)) + line.amount
        total += line.amount
    return total
