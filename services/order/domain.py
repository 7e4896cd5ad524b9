"""Orders: the aggregate, its state machine, its timeline, phone and money rules. Pure, no I/O.

Each change records the event it implies on `Order.events` (Cosmic Python's way); the use case
publishes them, and `customer_notice` says which of them the customer is told of.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, TypeAlias

from orderguard.shared.actor import Actor
from orderguard.shared.errors import IllegalTransition
from orderguard.shared.events import orders as contract
from orderguard.shared.events.notifications import CustomerNotice
from orderguard.shared.timeline import TimelineEntry

CENT = Decimal("0.01")


class OrderStatus(StrEnum):
    PLACED = "placed"
    PAYMENT_FAILED = "payment_failed"
    PAID = "paid"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    ON_HOLD = "on_hold"


class OrderAction(StrEnum):
    PAY = "pay"
    FAIL_PAYMENT = "fail_payment"
    SHIP = "ship"
    DELIVER = "deliver"
    COMPLETE = "complete"
    CANCEL = "cancel"
    HOLD = "hold"
    RELEASE = "release"


# `release` returns a held order to the status it was held from (remembered on the order).
HELD_FROM = "held_from"

# The whole state machine: (current status, action) -> next status. What is not listed is illegal.
# A new state is a new member above plus its rows here; nothing else decides legality.
TRANSITIONS: Mapping[OrderStatus, Mapping[OrderAction, OrderStatus | str]] = {
    OrderStatus.PLACED: {
        OrderAction.PAY: OrderStatus.PAID,
        OrderAction.FAIL_PAYMENT: OrderStatus.PAYMENT_FAILED,
        OrderAction.CANCEL: OrderStatus.CANCELLED,
        OrderAction.HOLD: OrderStatus.ON_HOLD,
    },
    # The customer may retry: a later success still pays it.
    OrderStatus.PAYMENT_FAILED: {
        OrderAction.PAY: OrderStatus.PAID,
        OrderAction.FAIL_PAYMENT: OrderStatus.PAYMENT_FAILED,
        OrderAction.CANCEL: OrderStatus.CANCELLED,
        OrderAction.HOLD: OrderStatus.ON_HOLD,
    },
    OrderStatus.PAID: {
        OrderAction.SHIP: OrderStatus.SHIPPED,
        OrderAction.CANCEL: OrderStatus.CANCELLED,
        OrderAction.HOLD: OrderStatus.ON_HOLD,
    },
    OrderStatus.SHIPPED: {OrderAction.DELIVER: OrderStatus.DELIVERED},
    OrderStatus.DELIVERED: {OrderAction.COMPLETE: OrderStatus.COMPLETED},
    OrderStatus.COMPLETED: {},
    OrderStatus.CANCELLED: {},
    OrderStatus.ON_HOLD: {
        OrderAction.RELEASE: HELD_FROM,
        OrderAction.CANCEL: OrderStatus.CANCELLED,
    },
}

# Payment outcomes still apply to a held order: they move the status it returns to on release
# (a held order that gets paid is released as paid), following the rows of that status above.
PASS_THROUGH_HOLD = frozenset({OrderAction.PAY, OrderAction.FAIL_PAYMENT})


def _illegal(order_id: str, current: OrderStatus, action: OrderAction) -> IllegalTransition:
    return IllegalTransition(
        "order",
        order_id,
        current,
        action,
        allowed_actions(current),
        sorted(status for status, actions in TRANSITIONS.items() if action in actions),
    )


def next_status(
    order_id: str,
    current: OrderStatus,
    action: OrderAction,
    held_from: OrderStatus | None = None,
) -> OrderStatus:
    try:
        target = TRANSITIONS[current][action]
    except KeyError:
        raise _illegal(order_id, current, action) from None
    if target == HELD_FROM:
        if held_from is None:
            raise _illegal(order_id, current, action)
        return held_from
    return OrderStatus(target)


def allowed_actions(
    current: OrderStatus, held_from: OrderStatus | None = None
) -> list[OrderAction]:
    actions = set(TRANSITIONS[current])
    if current is OrderStatus.ON_HOLD and held_from is not None:
        actions |= PASS_THROUGH_HOLD & set(TRANSITIONS[held_from])
    return sorted(actions)


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

    def as_dict(self) -> dict[str, str | None]:
        """Its fields by name, for JSON: `dataclasses.asdict` copies recursively and cost
        ~1% of a `GET /orders/{id}` or a `POST /orders` (py-spy)."""
        return {
            "province": self.province,
            "city": self.city,
            "district": self.district,
            "street": self.street,
            "recipient": self.recipient,
            "postal_code": self.postal_code,
        }


class HoldReason(StrEnum):
    """Why an order is held; operators filter their queue by it."""

    ADDRESS_INCOMPLETE = "address_incomplete"
    PHONE_INVALID = "phone_invalid"
    OUT_OF_STOCK = "out_of_stock"
    AMOUNT_MISMATCH = "amount_mismatch"
    MANUAL = "manual"


# What the customer can do about each hold (the `order.held` notification says it).
WHAT_YOU_CAN_DO: Mapping[HoldReason, str] = {
    HoldReason.ADDRESS_INCOMPLETE: "confirm or complete your shipping address with customer service",
    HoldReason.PHONE_INVALID: "give customer service a mobile number the carrier can reach",
    HoldReason.OUT_OF_STOCK: "wait for the restock, accept a substitute, or ask for a refund",
    HoldReason.AMOUNT_MISMATCH: "nothing yet: we are checking your payment and will contact you",
    HoldReason.MANUAL: "nothing yet: customer service is reviewing your order and will contact you",
}


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
    member_level: MemberLevel = "regular"
    customer_type: str = "new"  # at placement: see customer_type_of
    express: bool = False
    priority: Priority = field(default_factory=lambda: Priority(0, "P4"))
    payment_due_at: datetime | None = None
    payment_id: str | None = None
    paid_amount: Decimal | None = None
    promised_delivery_by: datetime | None = None
    delivered_at: datetime | None = None
    held_from: OrderStatus | None = None
    hold_reason: HoldReason | None = None
    hold_note: str | None = None
    hold_release_at: datetime | None = None
    # What the changes since the last publish imply, in order: one event per timeline entry
    # that announces something (not stored; the use case publishes and clears them).
    events: list[OrderEvent] = field(default_factory=list, repr=False, compare=False)

    @property
    def total_amount(self) -> Decimal:
        return order_total(self.lines)

    @property
    def reachable_mobile(self) -> str | None:
        """The phone the notifier may text: only a normalised mainland mobile."""
        return self.phone if len(self.phone) == 11 and self.phone.isdigit() else None

    def _facts(self) -> dict[str, Any]:
        """What order.placed.v1 and order.paid.v1 both tell about the order."""
        return {
            "order_id": self.order_id,
            "customer_id": self.customer_id,
            "channel": self.channel,
            "warehouse": self.warehouse,
            "lines": [
                contract.OrderLine(sku=line.sku, quantity=line.quantity, unit_price=line.unit_price)
                for line in self.lines
            ],
            "total_amount": self.total_amount,
            "phone": self.phone,
            "shipping_address": contract.ShippingAddress(**self.address.as_dict()),
        }

    @property
    def allowed_actions(self) -> list[OrderAction]:
        return allowed_actions(self.status, self.held_from)

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
        member_level: MemberLevel = "regular",
        express: bool = False,
        promised_days: int = 3,
        payment_due_at: datetime | None = None,
        earlier_orders: int = 0,
    ) -> tuple[Order, list[TimelineEntry]]:
        """A new order: placed, or held for manual review when the intake checks find problems
        (an incomplete address, a phone that is not a reachable mobile): never silently accepted."""
        lines = tuple(line.in_cents() for line in lines)
        if not lines:
            raise ValueError("an order needs at least one line")
        problems = intake_problems(phone, address)
        try:
            phone = normalise_mobile(phone)
        except InvalidPhone:
            phone = phone.strip()  # kept as given: a person calls back or corrects it
        total = order_total(lines)
        order = cls(
            order_id=order_id,
            customer_id=customer_id,
            phone=phone,
            address=address,
            lines=lines,
            channel=channel,
            warehouse=warehouse,
            status=OrderStatus.PLACED,
            placed_at=now,
            updated_at=now,
            member_level=member_level,
            customer_type=customer_type_of(member_level, earlier_orders),
            express=express,
            priority=priority_of(member_level, total, promised_days),
            payment_due_at=payment_due_at,
        )
        order.events.append(contract.OrderPlaced(**order._facts(), placed_at=now))
        entries = [
            TimelineEntry(
                at=now,
                what="placed",
                actor=actor,
                note=f"placed through {channel}",
                to_state=OrderStatus.PLACED,
                details={
                    "total_amount": str(total),
                    "lines": len(lines),
                    "priority": order.priority.level,
                    "priority_score": order.priority.score,
                },
            )
        ]
        if problems:
            entries.append(
                order.hold(
                    problems[0].reason,
                    "; ".join(problem.message for problem in problems),
                    None,
                    Actor("rule", "order.intake"),
                    now,
                    details={"problems": [problem.code for problem in problems]},
                )
            )
        return order, entries

    def _transition(
        self,
        action: OrderAction,
        actor: Actor,
        reason: str | None,
        now: datetime,
        details: Mapping[str, Any] | None = None,
    ) -> TimelineEntry:
        before = self.status
        if before is OrderStatus.ON_HOLD and action in PASS_THROUGH_HOLD and self.held_from:
            # Still held; on release it returns to where this action leads.
            self.held_from = next_status(self.order_id, self.held_from, action)
            self.updated_at = now
            return TimelineEntry(
                at=now,
                what=f"{self.held_from}_while_held",
                actor=actor,
                note=reason,
                from_state=before,
                to_state=before,
                details={**(details or {}), "held_from": str(self.held_from)},
            )
        self.status = next_status(self.order_id, before, action, self.held_from)
        self.updated_at = now
        return TimelineEntry(
            at=now,
            what=str(self.status) if action is not OrderAction.RELEASE else "released",
            actor=actor,
            note=reason,
            from_state=before,
            to_state=self.status,
            details=dict(details or {}),
        )

    def cancel(self, reason: str, actor: Actor, now: datetime) -> TimelineEntry:
        entry = self._transition(OrderAction.CANCEL, actor, reason, now)
        self._clear_hold()
        self.events.append(
            contract.OrderCancelled(
                order_id=self.order_id, reason=reason, cancelled_by=str(actor), cancelled_at=now
            )
        )
        return entry

    def request_refund(self, reason: str, actor: Actor, now: datetime) -> TimelineEntry | None:
        """A cancelled order that was paid asks for its payment back (after-sales issues it)."""
        assert self.status is OrderStatus.CANCELLED
        if self.payment_id is None or self.paid_amount is None:
            return None
        self.events.append(
            contract.OrderRefundRequested(
                order_id=self.order_id,
                customer_id=self.customer_id,
                payment_id=self.payment_id,
                amount=self.paid_amount,
                reason=reason,
                requested_by=str(actor),
                requested_at=now,
            )
        )
        return TimelineEntry(
            at=now,
            what="refund_requested",
            actor=actor,
            note=f"paid {self.paid_amount} ({self.payment_id}): after-sales refunds it",
            details={"payment_id": self.payment_id, "amount": str(self.paid_amount)},
        )

    def pay(
        self,
        payment_id: str,
        amount: Decimal,
        promised_delivery_by: datetime,
        actor: Actor,
        now: datetime,
    ) -> TimelineEntry:
        entry = self._transition(
            OrderAction.PAY,
            actor,
            f"payment {payment_id} captured",
            now,
            {"payment_id": payment_id, "amount": str(amount)},
        )
        self.payment_id = payment_id
        self.paid_amount = amount
        self.promised_delivery_by = promised_delivery_by
        return entry

    def announce_paid(self, actor: Actor, now: datetime) -> TimelineEntry:
        """order.paid.v1, once the order is paid and not held: logistics creates the shipment."""
        assert self.status is OrderStatus.PAID
        assert self.payment_id and self.paid_amount is not None
        assert self.promised_delivery_by is not None
        self.events.append(
            contract.OrderPaid(
                **self._facts(),
                paid_amount=self.paid_amount,
                payment_id=self.payment_id,
                promised_delivery_by=self.promised_delivery_by,
                paid_at=now,
            )
        )
        return TimelineEntry(
            at=now,
            what="payment_announced",
            actor=actor,
            note="order.paid.v1 published: the order can ship",
            details={"promised_delivery_by": self.promised_delivery_by.isoformat()},
        )

    def fail_payment(
        self,
        payment_id: str,
        code: str,
        reason: str | None,
        actor: Actor,
        now: datetime,
        *,
        provider: str,
        failed_at: datetime | None = None,
    ) -> TimelineEntry:
        entry = self._transition(
            OrderAction.FAIL_PAYMENT,
            actor,
            f"payment {payment_id} failed: {code}" + (f" ({reason})" if reason else ""),
            now,
            {"payment_id": payment_id, "code": code},
        )
        self.events.append(
            contract.OrderPaymentFailed(
                order_id=self.order_id,
                customer_id=self.customer_id,
                channel=self.channel,
                payment_id=payment_id,
                provider=provider,
                code=code,
                failed_at=failed_at or now,
            )
        )
        return entry

    def ship(
        self,
        shipment_id: str,
        carrier: str,
        tracking: str,
        actor: Actor,
        now: datetime,
        shipped_at: datetime | None = None,
    ) -> TimelineEntry:
        entry = self._transition(
            OrderAction.SHIP,
            actor,
            f"dispatched with {carrier}",
            now,
            {"shipment_id": shipment_id, "carrier": carrier, "tracking_number": tracking},
        )
        self.events.append(
            contract.OrderShipped(
                order_id=self.order_id,
                shipment_id=shipment_id,
                carrier=carrier,
                tracking_number=tracking,
                shipped_at=shipped_at or now,
            )
        )
        return entry

    def deliver(
        self, shipment_id: str, actor: Actor, now: datetime, delivered_at: datetime | None = None
    ) -> TimelineEntry:
        entry = self._transition(
            OrderAction.DELIVER,
            actor,
            "the carrier delivered it",
            now,
            {"shipment_id": shipment_id},
        )
        self.delivered_at = delivered_at or now
        return entry

    def complete(self, reason: str, actor: Actor, now: datetime) -> TimelineEntry:
        entry = self._transition(OrderAction.COMPLETE, actor, reason, now)
        assert self.delivered_at is not None
        self.events.append(
            contract.OrderCompleted(
                order_id=self.order_id, delivered_at=self.delivered_at, completed_at=now
            )
        )
        return entry

    def hold(
        self,
        reason: HoldReason,
        note: str,
        release_at: datetime | None,
        actor: Actor,
        now: datetime,
        details: Mapping[str, Any] | None = None,
    ) -> TimelineEntry:
        before = self.status
        entry = self._transition(
            OrderAction.HOLD,
            actor,
            note,
            now,
            {
                **(details or {}),
                "hold_reason": str(reason),
                "release_at": release_at.isoformat() if release_at else None,
            },
        )
        self.held_from = before
        self.hold_reason = reason
        self.hold_note = note
        self.hold_release_at = release_at
        self.events.append(
            contract.OrderHeld(
                order_id=self.order_id,
                customer_id=self.customer_id,
                channel=self.channel,
                reason=str(reason),
                note=note,
                held_from=str(before),
                release_at=release_at,
                held_by=str(actor),
                held_at=now,
            )
        )
        return entry

    def release(self, reason: str, actor: Actor, now: datetime) -> TimelineEntry:
        held = self.hold_reason
        entry = self._transition(
            OrderAction.RELEASE, actor, reason, now, {"hold_reason": str(held) if held else None}
        )
        self._clear_hold()
        self.events.append(
            contract.OrderReleased(
                order_id=self.order_id,
                reason=reason,
                hold_reason=str(held) if held else None,
                status=str(self.status),
                released_by=str(actor),
                released_at=now,
            )
        )
        return entry

    def retry_reservation(self, reason: str, actor: Actor, now: datetime) -> TimelineEntry:
        """Releasing an out-of-stock hold asks inventory again instead: the order stays held
        (its reason kept) until stock is reserved, so nothing ships without stock."""
        assert self.status is OrderStatus.ON_HOLD and self.hold_reason is HoldReason.OUT_OF_STOCK
        self.updated_at = now
        self.events.append(
            contract.ReservationRequested(
                order_id=self.order_id,
                warehouse=self.warehouse,
                lines=self._facts()["lines"],
                reason=reason,
                requested_by=str(actor),
                requested_at=now,
            )
        )
        return TimelineEntry(
            at=now,
            what="stock_reservation_requested",
            actor=actor,
            note=reason,
            details={"hold_reason": str(self.hold_reason)},
        )

    def _clear_hold(self) -> None:
        self.held_from = None
        self.hold_reason = None
        self.hold_note = None
        self.hold_release_at = None


OrderEvent: TypeAlias = (
    contract.OrderPlaced
    | contract.OrderCancelled
    | contract.OrderPaid
    | contract.OrderPaymentFailed
    | contract.OrderShipped
    | contract.OrderHeld
    | contract.OrderReleased
    | contract.OrderCompleted
    | contract.ReservationRequested
    | contract.OrderRefundRequested
)


def _notice(order: Order, template: str, params: dict[str, str], moment: str) -> CustomerNotice:
    """`moment` makes the request id deterministic: the same moment told again is one message."""
    return CustomerNotice(
        template, f"{template}:{order.order_id}:{moment}", {"order_id": order.order_id, **params}
    )


def customer_notice(order: Order, event: OrderEvent, event_id: str) -> CustomerNotice | None:
    """The notice an order event gives its customer, if any (event_id: the published event's)."""
    if isinstance(event, contract.OrderHeld) and event.reason != HoldReason.OUT_OF_STOCK:
        # An out-of-stock hold has its own notice, naming the SKUs (`out_of_stock_notice`).
        reason = HoldReason(event.reason)
        return _notice(
            order,
            "order.held",
            {"reason": str(reason), "what_you_can_do": WHAT_YOU_CAN_DO[reason]},
            event_id,
        )
    if isinstance(event, contract.OrderPaid):
        return _notice(
            order, "order.confirmed", {"total_amount": str(order.total_amount)}, event.payment_id
        )
    if isinstance(event, contract.OrderShipped):
        return _notice(
            order,
            "order.shipped",
            {"carrier": event.carrier, "tracking_number": event.tracking_number},
            event.shipment_id,
        )
    return None


def out_of_stock_notice(order: Order, skus: str) -> CustomerNotice:
    """`skus`: the short SKUs, comma-separated; the same shortage told again is the same request."""
    return _notice(
        order,
        "order.out_of_stock",
        {"skus": skus, "what_you_can_do": WHAT_YOU_CAN_DO[HoldReason.OUT_OF_STOCK]},
        skus.replace(", ", "+"),
    )


# -- intake checks ---------------------------------------------------------------------------

# Provincial-level divisions of mainland China, in Chinese and pinyin, without their suffix.
PROVINCES = frozenset(
    name.lower()
    for pair in (
        ("北京", "Beijing"),
        ("天津", "Tianjin"),
        ("上海", "Shanghai"),
        ("重庆", "Chongqing"),
        ("河北", "Hebei"),
        ("山西", "Shanxi"),
        ("辽宁", "Liaoning"),
        ("吉林", "Jilin"),
        ("黑龙江", "Heilongjiang"),
        ("江苏", "Jiangsu"),
        ("浙江", "Zhejiang"),
        ("安徽", "Anhui"),
        ("福建", "Fujian"),
        ("江西", "Jiangxi"),
        ("山东", "Shandong"),
        ("河南", "Henan"),
        ("湖北", "Hubei"),
        ("湖南", "Hunan"),
        ("广东", "Guangdong"),
        ("海南", "Hainan"),
        ("四川", "Sichuan"),
        ("贵州", "Guizhou"),
        ("云南", "Yunnan"),
        ("陕西", "Shaanxi"),
        ("甘肃", "Gansu"),
        ("青海", "Qinghai"),
        ("内蒙古", "Inner Mongolia"),
        ("广西", "Guangxi"),
        ("西藏", "Tibet"),
        ("宁夏", "Ningxia"),
        ("新疆", "Xinjiang"),
        ("香港", "Hong Kong"),
        ("澳门", "Macau"),
        ("台湾", "Taiwan"),
    )
    for name in pair
)
_PROVINCE_SUFFIX = re.compile(
    r"(省|市|自治区|壮族自治区|回族自治区|维吾尔自治区|特别行政区|\s+(province|municipality|"
    r"autonomous region|sar))$",
    re.IGNORECASE,
)
MIN_STREET_CHARS = 4  # "1号" says nothing a courier can find; "文三路 1 号" does
MIN_DISTRICT_CHARS = 2
_POSTAL_CODE = re.compile(r"[0-9]{6}")


@dataclass(frozen=True, slots=True)
class IntakeProblem:
    code: str  # e.g. street_too_short, phone_invalid
    reason: HoldReason
    message: str


def known_province(name: str) -> bool:
    bare = name.strip()
    for _ in range(2):  # 广西壮族自治区 -> 广西; "Zhejiang Province" -> zhejiang
        bare = _PROVINCE_SUFFIX.sub("", bare).strip()
    return bare.lower() in PROVINCES


def intake_problems(phone: str, address: Address) -> list[IntakeProblem]:
    """What a person must check before this order ships; empty when nothing."""
    problems: list[IntakeProblem] = []
    incomplete = HoldReason.ADDRESS_INCOMPLETE
    if len(address.street.strip()) < MIN_STREET_CHARS:
        problems.append(
            IntakeProblem(
                "street_too_short",
                incomplete,
                f"street is missing or shorter than {MIN_STREET_CHARS} characters",
            )
        )
    if len(address.district.strip()) < MIN_DISTRICT_CHARS:
        problems.append(IntakeProblem("district_missing", incomplete, "district is missing"))
    if not known_province(address.province):
        problems.append(
            IntakeProblem(
                "province_unknown", incomplete, "province is not a mainland China province"
            )
        )
    if address.postal_code is not None and not _POSTAL_CODE.fullmatch(address.postal_code):
        problems.append(
            IntakeProblem("postal_code_invalid", incomplete, "postal code is not 6 digits")
        )
    try:
        normalise_mobile(phone)
    except InvalidPhone:
        problems.append(
            IntakeProblem(
                "phone_invalid",
                HoldReason.PHONE_INVALID,
                "phone is not a mainland China mobile number",
            )
        )
    return problems


# -- priority --------------------------------------------------------------------------------

MemberLevel = Literal["regular", "silver", "gold", "platinum"]


def customer_type_of(member_level: MemberLevel, earlier_orders: int) -> str:
    """Who placed the order, fixed at placement: a member by level, else `returning` when the
    customer had ordered before, else `new` (the recycle bin's customer type dimension)."""
    if member_level != "regular":
        return member_level
    return "returning" if earlier_orders else "new"


# Weights of the priority score (0..100): member level up to 30, amount up to 30, delivery
# promise up to 40 (a promise due soon matters most to the warehouse and to people).
MEMBER_POINTS: Mapping[str, int] = {"regular": 0, "silver": 10, "gold": 20, "platinum": 30}
AMOUNT_POINTS: tuple[tuple[Decimal, int], ...] = (
    (Decimal("5000"), 30),
    (Decimal("1000"), 20),
    (Decimal("200"), 10),
)
PROMISE_POINTS: Mapping[int, int] = {0: 40, 1: 40, 2: 25, 3: 10}  # promised days -> points
PRIORITY_FLOORS: tuple[tuple[int, str], ...] = ((70, "P1"), (45, "P2"), (20, "P3"), (0, "P4"))


@dataclass(frozen=True, slots=True)
class Priority:
    score: int  # 0..100, higher first
    level: str  # P1 (first) .. P4


def priority_of(member_level: str, amount: Decimal, promised_days: int) -> Priority:
    """Score = member points + amount points + promise points; P1 from 70, P2 45, P3 20."""
    score = MEMBER_POINTS.get(member_level, 0)
    score += next((points for floor, points in AMOUNT_POINTS if amount >= floor), 0)
    score += PROMISE_POINTS.get(max(promised_days, 0), 0)
    level = next(level for floor, level in PRIORITY_FLOORS if score >= floor)
    return Priority(score, level)


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
