"""Stock, its ledger and reservations: pure rules, no I/O."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from orderguard.shared.errors import IllegalTransition
from orderguard.shared.events.inventory import Movement, ReservedLine, Shortage


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
