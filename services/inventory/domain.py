"""Stock, its ledger and reservations: pure rules, no I/O.

`StockBook` applies the changes of one unit of work to the stock and reservations it was given,
recording the ledger rows and the events they imply; the use case loads, publishes and saves.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal, TypeAlias

from orderguard.shared.envelope import Envelope
from orderguard.shared.errors import IllegalTransition
from orderguard.shared.events.inventory import (
    Movement,
    ReservationFailed,
    ReservationReleased,
    ReservedLine,
    Shortage,
    StockChanged,
    StockCommitted,
    StockCounted,
    StockReserved,
)
from orderguard.shared.events.orders import (
    OrderCancelled,
    OrderPlaced,
    OrderShipped,
    ReservationRequested,
)


@dataclass(frozen=True, slots=True)
class StockLevel:
    """The running balance of one SKU in one warehouse (the sum of its ledger)."""

    sku: str
    warehouse: str
    on_hand: int
    reserved: int = 0
    low_stock_threshold: int | None = None

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def with_threshold(self, low_stock_threshold: int | None) -> StockLevel:
        return replace(self, low_stock_threshold=low_stock_threshold)

    def with_on_hand(self, on_hand: int, low_stock_threshold: int | None) -> StockLevel:
        return replace(self, on_hand=on_hand, low_stock_threshold=low_stock_threshold)

    def receive(self, quantity: int) -> StockLevel:
        if quantity <= 0:
            raise ValueError(f"a receipt of {self.sku} must add units, not {quantity}")
        return replace(self, on_hand=self.on_hand + quantity)

    def counted(self, on_hand: int) -> StockLevel:
        if on_hand < 0:
            raise ValueError(f"a count of {self.sku} cannot find {on_hand} units")
        return replace(self, on_hand=on_hand)

    def reserve(self, quantity: int) -> StockLevel:
        if quantity > self.available:
            raise ValueError(f"cannot reserve {quantity} of {self.sku}: {self.available} available")
        return replace(self, reserved=self.reserved + quantity)

    def release(self, quantity: int) -> StockLevel:
        return replace(self, reserved=max(0, self.reserved - quantity))

    def commit(self, quantity: int) -> StockLevel:
        """The reserved units left the warehouse. A count may have put on hand below what was
        reserved: on hand never goes below zero (the shortfall shows in the ledger row)."""
        return replace(
            self,
            on_hand=max(0, self.on_hand - quantity),
            reserved=max(0, self.reserved - quantity),
        )


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One stock movement: the deltas it applied and the balance after it."""

    sku: str
    warehouse: str
    movement: Movement
    on_hand_delta: int
    reserved_delta: int
    on_hand_after: int
    reserved_after: int
    order_id: str | None = None
    reference: str | None = None  # receipt, count or shipment id
    actor: str | None = None
    note: str | None = None

    @classmethod
    def between(
        cls,
        before: StockLevel,
        after: StockLevel,
        movement: Movement,
        order_id: str | None = None,
        reference: str | None = None,
        actor: str | None = None,
        note: str | None = None,
    ) -> LedgerEntry:
        return cls(
            sku=after.sku,
            warehouse=after.warehouse,
            movement=movement,
            on_hand_delta=after.on_hand - before.on_hand,
            reserved_delta=after.reserved - before.reserved,
            on_hand_after=after.on_hand,
            reserved_after=after.reserved,
            order_id=order_id,
            reference=reference,
            actor=actor,
            note=note,
        )


def replay(sku: str, warehouse: str, entries: Iterable[LedgerEntry]) -> StockLevel:
    """The balance a ledger sums to (what the stock row must equal)."""
    on_hand = reserved = 0
    for entry in entries:
        on_hand += entry.on_hand_delta
        reserved += entry.reserved_delta
    return StockLevel(sku, warehouse, on_hand=on_hand, reserved=reserved)


ReservationState = Literal["held", "released", "committed", "failed"]


@dataclass(frozen=True, slots=True)
class ReservationLine:
    """Units of one SKU in one warehouse for one order: held -> committed | released, once.

    `failed` records an order that could not be reserved (nothing held), so the same order
    placed again under a new event id is not tried twice.
    """

    order_id: str
    sku: str
    warehouse: str
    quantity: int
    state: ReservationState

    def _illegal(self, action: str) -> IllegalTransition:
        return IllegalTransition(
            "reservation", f"{self.order_id}/{self.sku}@{self.warehouse}", self.state, action
        )

    def commit(self) -> ReservationLine:
        if self.state != "held":
            raise self._illegal("commit")
        return replace(self, state="committed")

    def release(self) -> ReservationLine:
        if self.state != "held":
            raise self._illegal("release")
        return replace(self, state="released")

    @property
    def line(self) -> ReservedLine:
        return ReservedLine(sku=self.sku, warehouse=self.warehouse, quantity=self.quantity)


# What an order's reservation lines say about a commit or a release asked for it.
Decision = Literal["apply", "already_done", "after_commit", "nothing_held", "unknown"]


def decide(lines: Sequence[ReservationLine], action: Literal["commit", "release"]) -> Decision:
    """apply: lines are held. already_done: the same fact again (committed for a commit,
    released for a release). after_commit: a release of an order that shipped. nothing_held:
    a release of an order whose reservation failed. unknown: no reservation to act on (none
    at all, or a commit of an order that was released or never reserved)."""
    states = {line.state for line in lines}
    if "held" in states:
        return "apply"
    if action == "commit":
        return "already_done" if "committed" in states else "unknown"
    if not states:
        return "unknown"
    if "released" in states:
        return "already_done"
    if "committed" in states:
        return "after_commit"
    return "nothing_held"


StockKey = tuple[str, str]  # (sku, warehouse)


def lines_by_stock(lines: Iterable[ReservedLine]) -> dict[StockKey, int]:
    """Order lines summed per SKU and warehouse (an order may list a SKU twice)."""
    totals: dict[StockKey, int] = defaultdict(int)
    for line in lines:
        totals[(line.sku, line.warehouse)] += line.quantity
    return dict(totals)


def shortages(levels: dict[StockKey, StockLevel], wanted: dict[StockKey, int]) -> list[Shortage]:
    """What an all-or-nothing reservation lacks; empty when every line can be met."""
    missing = []
    for (sku, warehouse), quantity in sorted(wanted.items()):
        level = levels.get((sku, warehouse))
        available = level.available if level else 0
        if quantity > available:
            missing.append(
                Shortage(sku=sku, warehouse=warehouse, requested=quantity, available=available)
            )
    return missing


# Movement -> the coarser `cause` of inventory.stock_changed.v1 (its published enum).
CAUSES: dict[Movement, str] = {
    "stock_set": "stock_set",
    "received": "stock_set",
    "reserved": "reserved",
    "released": "released",
    "committed": "committed",
    "adjusted": "adjusted",
}

InventoryEvent: TypeAlias = (
    StockChanged
    | StockCounted
    | StockReserved
    | ReservationFailed
    | StockCommitted
    | ReservationReleased
)


@dataclass(frozen=True, slots=True)
class NoReservation:
    """An order event asked to commit or release a reservation that is not there."""

    action: Literal["commit", "release"]
    order_id: str
    found: str  # the states of the order's lines, comma-separated, or "none"


@dataclass(frozen=True, slots=True)
class Recorded:
    """An event a change implies, keyed by `subject`, continuing the trace of `cause`."""

    subject: str
    event: InventoryEvent
    cause: Envelope | None = None


class StockBook:
    """The stock levels and reservations one unit of work touches (as of `now`), and what its
    changes recorded: ledger rows, changed rows, the events to publish, and the order events
    that found no reservation to act on."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.levels: dict[StockKey, StockLevel] = {}
        self.reservations: dict[str, list[ReservationLine]] = {}
        self.ledger: list[LedgerEntry] = []
        self.changed: set[StockKey] = set()
        self.changed_reservations: list[ReservationLine] = []
        self.events: list[Recorded] = []
        self.unknown: list[tuple[NoReservation, Envelope]] = []
        # Cancellations of orders whose goods had left: nothing released (order id, event id).
        self.cancelled_after_commit: list[tuple[str, str]] = []

    def current(self, sku: str, warehouse: str) -> StockLevel:
        return self.levels.get((sku, warehouse)) or StockLevel(sku, warehouse, on_hand=0)

    def change(
        self,
        level: StockLevel,
        movement: Movement | None,
        order_id: str | None = None,
        reference: str | None = None,
        actor: str | None = None,
        note: str | None = None,
        cause: Envelope | None = None,
    ) -> StockLevel:
        """Apply a new balance: its ledger row (`movement` None: nothing moved, e.g. a new
        threshold), its stock_changed event."""
        key = (level.sku, level.warehouse)
        before = self.current(*key)
        self.levels[key] = level
        self.changed.add(key)
        if movement is not None:
            entry = LedgerEntry.between(before, level, movement, order_id, reference, actor, note)
            if entry.on_hand_delta or entry.reserved_delta or movement == "adjusted":
                self.ledger.append(entry)  # a count that confirms the balance is recorded too
        self.events.append(
            Recorded(
                level.sku,
                StockChanged(
                    sku=level.sku,
                    warehouse=level.warehouse,
                    on_hand=level.on_hand,
                    reserved=level.reserved,
                    available=level.available,
                    low_stock_threshold=level.low_stock_threshold,
                    cause=CAUSES[movement or "stock_set"],
                    order_id=order_id,
                    movement=movement,
                ),
                cause,
            )
        )
        return level

    # -- people: set, receive, count ------------------------------------------------------------

    def set_stock(
        self,
        sku: str,
        warehouse: str,
        on_hand: int,
        low_stock_threshold: int | None,
        actor: str | None = None,
    ) -> StockLevel:
        level = self.current(sku, warehouse).with_on_hand(on_hand, low_stock_threshold)
        return self.change(level, "stock_set", actor=actor)

    def set_threshold(
        self, sku: str, warehouse: str, low_stock_threshold: int | None, actor: str | None = None
    ) -> StockLevel:
        """The SKU's own low-stock threshold (None: the configured one); not a movement, but
        published so the detector re-evaluates with it."""
        level = self.current(sku, warehouse).with_threshold(low_stock_threshold)
        return self.change(level, None, actor=actor)

    def receive(
        self,
        sku: str,
        warehouse: str,
        quantity: int,
        receipt_id: str,
        actor: str,
        note: str | None = None,
    ) -> StockLevel:
        level = self.current(sku, warehouse).receive(quantity)
        return self.change(level, "received", reference=receipt_id, actor=actor, note=note)

    def count(
        self,
        sku: str,
        warehouse: str,
        counted_on_hand: int,
        count_id: str,
        counted_by: str,
        ledger: tuple[int, int],
        at: datetime,
        note: str | None = None,
    ) -> tuple[StockLevel, StockCounted]:
        """On hand becomes what was counted (an `adjusted` movement); the count is published
        with the balance and the ledger sums it is checked against (`ledger`: the sums read
        before this count, with the stock row locked)."""
        before = self.current(sku, warehouse)
        counted = StockCounted(
            count_id=count_id,
            sku=sku,
            warehouse=warehouse,
            counted_on_hand=counted_on_hand,
            expected_on_hand=before.on_hand,
            ledger_on_hand=ledger[0],
            reserved=before.reserved,
            ledger_reserved=ledger[1],
            counted_by=counted_by,
            counted_at=at,
        )
        level = self.change(
            before.counted(counted_on_hand),
            "adjusted",
            reference=count_id,
            actor=counted_by,
            note=note,
        )
        self.events.append(Recorded(sku, counted))
        return level, counted

    # -- orders: reserve, commit, release -------------------------------------------------------

    def reserve_for(self, placed: OrderPlaced | ReservationRequested, cause: Envelope) -> None:
        """All or nothing; once per order whatever is redelivered (its lines, held or failed,
        are recorded). A reservation requested again (an out-of-stock hold released) tries
        once more only when every line of the last attempt failed: once per order line."""
        earlier = self.reservations.get(placed.order_id)
        retry = isinstance(placed, ReservationRequested)
        if earlier and not (retry and all(line.state == "failed" for line in earlier)):
            return
        wanted = lines_by_stock(
            ReservedLine(sku=line.sku, warehouse=placed.warehouse, quantity=line.quantity)
            for line in placed.lines
        )
        missing = shortages(self.levels, wanted)
        state: Literal["held", "failed"] = "failed" if missing else "held"
        lines = [
            ReservationLine(placed.order_id, sku, warehouse, quantity, state)
            for (sku, warehouse), quantity in sorted(wanted.items())
        ]
        self.reservations[placed.order_id] = lines
        self.changed_reservations += lines
        if missing:
            failed = ReservationFailed(order_id=placed.order_id, shortages=missing)
            self.events.append(Recorded(placed.order_id, failed, cause))
            return
        for line in lines:
            key = (line.sku, line.warehouse)
            self.change(
                self.levels[key].reserve(line.quantity),
                "reserved",
                order_id=placed.order_id,
                actor=f"event:{cause.id}",
                cause=cause,
            )
        reserved = StockReserved(order_id=placed.order_id, lines=[line.line for line in lines])
        self.events.append(Recorded(placed.order_id, reserved, cause))

    def commit_for(self, shipped: OrderShipped, cause: Envelope) -> None:
        """The held lines leave the warehouse: on hand and reserved drop, once per order."""
        lines = self.reservations.get(shipped.order_id, [])
        decision = decide(lines, "commit")
        if decision == "unknown":
            self.unknown.append((_unknown("commit", shipped.order_id, lines), cause))
            return
        if decision != "apply":
            return
        committed = []
        for line in lines:
            self.change(
                self.current(line.sku, line.warehouse).commit(line.quantity),
                "committed",
                order_id=shipped.order_id,
                reference=shipped.shipment_id,
                actor=f"event:{cause.id}",
                cause=cause,
            )
            committed.append(line.commit())
        self.reservations[shipped.order_id] = committed
        self.changed_reservations += committed
        self.events.append(
            Recorded(
                shipped.order_id,
                StockCommitted(
                    order_id=shipped.order_id,
                    shipment_id=shipped.shipment_id,
                    lines=[line.line for line in committed],
                    committed_at=self.now,
                ),
                cause,
            )
        )

    def release_for(self, cancelled: OrderCancelled, cause: Envelope) -> None:
        """Release what is still held for the order (whatever the reason: by a person, a
        payment timeout, ...); a second cancel finds nothing held."""
        lines = self.reservations.get(cancelled.order_id, [])
        decision = decide(lines, "release")
        if decision == "unknown":
            self.unknown.append((_unknown("release", cancelled.order_id, lines), cause))
            return
        if decision == "after_commit":
            # The goods have left: nothing is held to release. If they come back, they are
            # received again (POST /stock/{sku}/{warehouse}/receipts).
            self.cancelled_after_commit.append((cancelled.order_id, cause.id))
            return
        if decision != "apply":
            return
        released = []
        for line in lines:
            self.change(
                self.current(line.sku, line.warehouse).release(line.quantity),
                "released",
                order_id=cancelled.order_id,
                actor=f"event:{cause.id}",
                note=cancelled.reason[:200],
                cause=cause,
            )
            released.append(line.release())
        self.reservations[cancelled.order_id] = released
        self.changed_reservations += released
        self.events.append(
            Recorded(
                cancelled.order_id,
                ReservationReleased(
                    order_id=cancelled.order_id,
                    lines=[line.line for line in released],
                    reason=cancelled.reason,
                ),
                cause,
            )
        )


def _unknown(
    action: Literal["commit", "release"], order_id: str, lines: Sequence[ReservationLine]
) -> NoReservation:
    return NoReservation(
        action, order_id, ",".join(sorted({line.state for line in lines})) or "none"
    )
