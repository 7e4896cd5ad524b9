"""Orders: the aggregate, its state machine, its timeline, phone and money rules. Pure, no I/O."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

CENT = Decimal("0.01")


class OrderStatus(StrEnum):
    PLACED = "placed"
    CANCELLED = "cancelled"
    # Next issues add: paid, payment_failed, on_hold, shipped, delivered, completed.


class OrderAction(StrEnum):
    CANCEL = "cancel"
    # Next issues add: pay, fail_payment, hold, release_hold, ship, deliver, complete.


# The whole state machine: (current status, action) -> next status. What is not listed is illegal.
# A new state is a new member above plus its rows here; nothing else decides legality.
TRANSITIONS: Mapping[OrderStatus, Mapping[OrderAction, OrderStatus]] = {
    OrderStatus.PLACED: {OrderAction.CANCEL: OrderStatus.CANCELLED},
    OrderStatus.CANCELLED: {},
}


class IllegalTransition(Exception):
    """An action the order's current status does not allow."""

    def __init__(self, order_id: str, current: OrderStatus, action: OrderAction) -> None:
        super().__init__(f"order {order_id} is {current}: cannot {action}")
        self.order_id = order_id
        self.current = current
        self.action = action


def next_status(order_id: str, current: OrderStatus, action: OrderAction) -> OrderStatus:
    try:
        return TRANSITIONS[current][action]
    except KeyError:
        raise IllegalTransition(order_id, current, action) from None


def allowed_actions(current: OrderStatus) -> list[OrderAction]:
    return sorted(TRANSITIONS[current])


# -- phone ---------------------------------------------------------------------------------

_MAINLAND_MOBILE = re.compile(
    r"1[3-9][0-9]{9}"
)  # ASCII digits only: \d matches full-width ones too
_COUNTRY_PREFIX = re.compile(r"^(?:\+86|0086)")
_SEPARATORS = re.compile(r"[\s-]")


class InvalidPhone(ValueError):
    pass


def normalise_mobile(raw: str) -> str:
    """A mainland China mobile number as its 11 digits; +86/0086, spaces and dashes removed."""
    number = _COUNTRY_PREFIX.sub("", _SEPARATORS.sub("", raw))
    if not _MAINLAND_MOBILE.fullmatch(number):
        raise InvalidPhone(
            "must be a mainland China mobile number: 11 digits starting 13-19, optional +86"
        )
    return number


def mask_phone(phone: str) -> str:
    """138****5678: enough for a customer to recognise, not enough to call."""
    if len(phone) < 7:
        return "*" * len(phone)
    return f"{phone[:3]}{'*' * (len(phone) - 7)}{phone[-4:]}"


# -- order ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    quantity: int
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return (self.unit_price * self.quantity).quantize(CENT)

    def in_cents(self) -> Line:
        """The line with its price written to the cent (5.5 -> 5.50); rejects what cannot be."""
        if self.quantity <= 0:
            raise ValueError(f"{self.sku}: quantity must be positive")
        price = self.unit_price.quantize(CENT)
        if self.unit_price < 0 or price != self.unit_price:
            raise ValueError(f"{self.sku}: unit price must be a non-negative amount in cents")
        return replace(self, unit_price=price)


def order_total(lines: Iterable[Line]) -> Decimal:
    return sum((line.amount for line in lines), Decimal(0)).quantize(CENT)


@dataclass(frozen=True, slots=True)
class Address:
    province: str
    city: str
    district: str
    street: str
    recipient: str
    postal_code: str | None = None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made something happen: an API caller (by scope), a consumer group, a rule, a person."""

    kind: str  # api | consumer | rule | operator
    id: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One thing that happened to an order: what, when, who, why, and the event that told of it."""

    at: datetime
    what: str
    actor: Actor
    reason: str | None = None
    from_status: OrderStatus | None = None
    to_status: OrderStatus | None = None
    event_type: str | None = None
    event_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def told_by(self, event_type: str, event_id: str) -> TimelineEntry:
        return replace(self, event_type=event_type, event_id=event_id)


@dataclass(slots=True)
class Order:
    order_id: str
    customer_id: str
    phone: str
    address: Address
    lines: tuple[Line, ...]
    channel: str
    warehouse: str
    status: OrderStatus
    placed_at: datetime
    updated_at: datetime

    @property
    def total_amount(self) -> Decimal:
        return order_total(self.lines)

    @classmethod
    def place(
        cls,
        order_id: str,
        customer_id: str,
        phone: str,
        address: Address,
        lines: Iterable[Line],
        channel: str,
        warehouse: str,
        actor: Actor,
        now: datetime,
    ) -> tuple[Order, TimelineEntry]:
        lines = tuple(line.in_cents() for line in lines)
        if not lines:
            raise ValueError("an order needs at least one line")
        order = cls(
            order_id=order_id,
            customer_id=customer_id,
            phone=normalise_mobile(phone),
            address=address,
            lines=lines,
            channel=channel,
            warehouse=warehouse,
            status=OrderStatus.PLACED,
            placed_at=now,
            updated_at=now,
        )
        entry = TimelineEntry(
            at=now,
            what="placed",
            actor=actor,
            reason=f"placed through {channel}",
            to_status=OrderStatus.PLACED,
            details={"total_amount": str(order.total_amount), "lines": len(lines)},
        )
        return order, entry

    def _transition(
        self, action: OrderAction, actor: Actor, reason: str | None, now: datetime
    ) -> TimelineEntry:
        before = self.status
        self.status = next_status(self.order_id, before, action)
        self.updated_at = now
        return TimelineEntry(
            at=now,
            what=str(self.status),
            actor=actor,
            reason=reason,
            from_status=before,
            to_status=self.status,
        )

    def cancel(self, reason: str, actor: Actor, now: datetime) -> TimelineEntry:
        return self._transition(OrderAction.CANCEL, actor, reason, now)


# -- ids -----------------------------------------------------------------------------------

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_order_id(now: datetime) -> str:
    """`ord_` + a ULID (48 bits of milliseconds, 80 random bits): ids sort by creation time."""
    value = (int(now.timestamp() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "ord_" + "".join(reversed(chars))
