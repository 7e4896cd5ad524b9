"""The order recycle bin: entries, their states, their causes, and which events send an order
there. Pure, no I/O.

An entry references an order set aside (refunded, returned, abnormal, deleted by mistake, ...);
the order itself is untouched. One entry per stay in the bin: in_bin -> restored, or
in_bin -> archived -> purged. Each move records its event on `BinEntry.events`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TypeAlias

from orderguard.services.order.domain import Actor, new_order_id
from orderguard.shared.errors import IllegalTransition
from orderguard.shared.events import recycle_bin as contract


class Category(StrEnum):
    REFUND = "refund"
    RETURN = "return"
    EXCHANGE = "exchange"
    COMPLAINT = "complaint"
    ABNORMAL = "abnormal"
    DELETED_BY_MISTAKE = "deleted_by_mistake"
    HELD = "held"
    OTHER = "other"


class BinState(StrEnum):
    IN_BIN = "in_bin"
    RESTORED = "restored"
    ARCHIVED = "archived"
    PURGED = "purged"


class BinAction(StrEnum):
    RESTORE = "restore"
    ARCHIVE = "archive"
    PURGE = "purge"


# The whole state machine of an entry; what is not listed is illegal.
BIN_TRANSITIONS: Mapping[BinState, Mapping[BinAction, BinState]] = {
    BinState.IN_BIN: {BinAction.RESTORE: BinState.RESTORED, BinAction.ARCHIVE: BinState.ARCHIVED},
    BinState.ARCHIVED: {BinAction.PURGE: BinState.PURGED},
    BinState.RESTORED: {},
    BinState.PURGED: {},
}

# What an after-sales case of each type means for the bin; repairs keep the order where it is.
CASE_CATEGORIES: Mapping[str, Category] = {
    "return": Category.RETURN,
    "refund": Category.REFUND,
    "complaint": Category.COMPLAINT,
    "exchange": Category.EXCHANGE,
}

# Anomaly rules that send the order named in their labels to the bin (a setting overrides it).
DEFAULT_ANOMALY_CATEGORIES: Mapping[str, str] = {"order.duplicate": Category.ABNORMAL.value}


def next_state(entry: BinEntry, action: BinAction) -> BinState:
    try:
        return BIN_TRANSITIONS[entry.state][action]
    except KeyError:
        raise IllegalTransition(
            "recycle bin entry",
            entry.entry_id,
            entry.state,
            action,
            sorted(BIN_TRANSITIONS[entry.state]),
            sorted(state for state, moves in BIN_TRANSITIONS.items() if action in moves),
        ) from None


def case_category(case_type: str) -> Category | None:
    """The bin category of an after-sales case of this type, or None (no move)."""
    return CASE_CATEGORIES.get(case_type)


def anomaly_categories(configured: Mapping[str, str]) -> dict[str, Category]:
    """The rule -> category setting, validated: an unknown category stops start-up."""
    known = ", ".join(c.value for c in Category)
    mapping = {}
    for rule, category in configured.items():
        try:
            mapping[rule] = Category(category)
        except ValueError:
            raise ValueError(
                f"recycle_bin_anomaly_rules: rule {rule!r} maps to unknown category"
                f" {category!r}; use one of {known}"
            ) from None
    return mapping


def anomaly_category(
    rule: str, status: str, labels: Mapping[str, str], categories: Mapping[str, Category]
) -> tuple[str, Category] | None:
    """(order id, category) when a firing anomaly of a configured rule names an order."""
    order_id = labels.get("order_id")
    if status != "firing" or not order_id or rule not in categories:
        return None
    return order_id, categories[rule]


# -- causes --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cause:
    """Why an order is in the bin. `key` says when two causes are the same cause."""

    key: str
    category: Category
    reason: str
    actor: Actor
    at: datetime
    case_id: str | None = None
    event_type: str | None = None
    event_id: str | None = None

    @property
    def by_hand(self) -> bool:
        """A person's cause counts once per stay; an event's cause once per order, ever."""
        return self.key.startswith("manual:")


def manual_cause(category: Category, reason: str, actor: Actor, now: datetime) -> Cause:
    normalised = " ".join(reason.split()).casefold()
    return Cause(f"manual:{category}:{normalised}", category, reason, actor, now)


def refund_cause(
    refund_id: str, case_id: str, amount: Decimal, reason: str, actor: Actor, at: datetime
) -> Cause:
    return Cause(
        f"refund:{refund_id}",
        Category.REFUND,
        f"refund {amount} issued: {reason}",
        actor,
        at,
        case_id=case_id,
    )


def case_cause(case_id: str, category: Category, reason: str, actor: Actor, at: datetime) -> Cause:
    return Cause(
        f"case:{case_id}", category, f"{category} case opened: {reason}", actor, at, case_id=case_id
    )


def anomaly_cause(
    fingerprint: str, category: Category, summary: str, actor: Actor, at: datetime
) -> Cause:
    return Cause(f"anomaly:{fingerprint}", category, summary, actor, at)


# -- entries -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What the bin keeps of the order it references: nothing personal."""

    order_id: str
    status: str
    channel: str
    amount: Decimal


@dataclass(slots=True)
class BinEntry:
    entry_id: str
    order_id: str
    state: BinState
    category: Category
    reason: str
    case_id: str | None
    moved_by: str
    moved_at: datetime
    last_cause_at: datetime
    order_status: str
    channel: str
    amount: Decimal
    causes: list[Cause] = field(default_factory=list)
    closed_by: str | None = None
    closed_reason: str | None = None
    restored_at: datetime | None = None
    archived_at: datetime | None = None
    purged_at: datetime | None = None
    # The event of the last move, until the use case publishes it (not stored).
    events: list[BinEvent] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def open(cls, order: OrderFacts, cause: Cause) -> BinEntry:
        entry = cls(
            entry_id="rb_" + new_order_id(cause.at).removeprefix("ord_"),
            order_id=order.order_id,
            state=BinState.IN_BIN,
            category=cause.category,
            reason=cause.reason,
            case_id=cause.case_id,
            moved_by=str(cause.actor),
            moved_at=cause.at,
            last_cause_at=cause.at,
            order_status=order.status,
            channel=order.channel,
            amount=order.amount,
            causes=[cause],
        )
        entry.events.append(
            contract.OrderRecycled(
                order_id=entry.order_id,
                entry_id=entry.entry_id,
                category=entry.category.value,
                reason=entry.reason,
                case_id=entry.case_id,
                moved_by=entry.moved_by,
                order_status=entry.order_status,
                channel=entry.channel,
                amount=entry.amount,
                moved_at=entry.moved_at,
            )
        )
        return entry

    def has_cause(self, key: str) -> bool:
        return any(cause.key == key for cause in self.causes)

    def add_cause(self, cause: Cause) -> None:
        """Another reason for the same stay; the entry keeps its first category and reason."""
        if self.state is not BinState.IN_BIN:
            raise ValueError(f"entry {self.entry_id} is {self.state}: it takes no more causes")
        self.causes.append(cause)
        self.last_cause_at = max(self.last_cause_at, cause.at)
        if self.case_id is None:
            self.case_id = cause.case_id

    def _move(self, action: BinAction, actor: Actor, reason: str | None, now: datetime) -> None:
        self.state = next_state(self, action)
        self.closed_by = str(actor)
        self.closed_reason = reason
        if action is BinAction.RESTORE:
            self.restored_at = now
        elif action is BinAction.ARCHIVE:
            self.archived_at = now
        else:
            self.purged_at = now

    def restore(
        self, actor: Actor, reason: str | None, now: datetime, order_status: str | None = None
    ) -> None:
        """`order_status`: the order's status now (the bin never changes it)."""
        self._move(BinAction.RESTORE, actor, reason, now)
        self.events.append(
            contract.OrderRestored(
                order_id=self.order_id,
                entry_id=self.entry_id,
                category=self.category.value,
                restored_by=str(actor),
                reason=reason,
                order_status=order_status or self.order_status,
                restored_at=now,
            )
        )

    def archive(self, actor: Actor, reason: str, now: datetime) -> None:
        self._move(BinAction.ARCHIVE, actor, reason, now)
        self.events.append(
            contract.OrderArchived(
                order_id=self.order_id,
                entry_id=self.entry_id,
                category=self.category.value,
                archived_by=str(actor),
                reason=reason,
                case_id=self.case_id,
                archived_at=now,
            )
        )

    def purge(self, now: datetime) -> None:
        """Only the state and time change: who archived it and why stays on the entry."""
        self.state = next_state(self, BinAction.PURGE)
        self.purged_at = now
        self.events.append(
            contract.OrderPurged(
                order_id=self.order_id,
                entry_id=self.entry_id,
                category=self.category.value,
                purged_fields=list(PURGED_FIELDS),
                purged_at=now,
            )
        )


BinEvent: TypeAlias = (
    contract.OrderRecycled | contract.OrderRestored | contract.OrderArchived | contract.OrderPurged
)


class MoveOutcome(StrEnum):
    MOVED = "moved"  # a new entry: the order went into the bin
    REASON_ADDED = "reason_added"  # already in the bin: the cause joins the entry's history
    ALREADY = "already"  # this cause was applied before: nothing to do


def move_to_recycle_bin(
    order: OrderFacts, open_entry: BinEntry | None, seen_causes: set[str], cause: Cause
) -> tuple[MoveOutcome, BinEntry | None]:
    """Decide what a cause does to an order: a new entry, a reason added, or nothing.

    `open_entry` is the order's entry in the bin (if any); `seen_causes` the keys of every cause
    the order ever had, so a refund redelivered under a new event id after the entry was
    archived does not send the order back in.
    """
    if open_entry is not None and open_entry.has_cause(cause.key):
        return MoveOutcome.ALREADY, open_entry
    if not cause.by_hand and cause.key in seen_causes:
        return MoveOutcome.ALREADY, open_entry
    if open_entry is None:
        return MoveOutcome.MOVED, BinEntry.open(order, cause)
    open_entry.add_cause(cause)
    return MoveOutcome.REASON_ADDED, open_entry


# What a purge removes from the order: everything that identifies or locates a person.
PURGED_FIELDS = (
    "phone",
    "shipping_address.district",
    "shipping_address.street",
    "shipping_address.recipient",
    "shipping_address.postal_code",
)
