"""Stock and reservations: pure rules, no I/O."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from orderguard.shared.events.inventory import ReservedLine, Shortage


@dataclass(frozen=True, slots=True)
class StockLevel:
    sku: str
    warehouse: str
    on_hand: int
    reserved: int = 0
    low_stock_threshold: int | None = None

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def with_on_hand(self, on_hand: int, low_stock_threshold: int | None) -> StockLevel:
        return replace(self, on_hand=on_hand, low_stock_threshold=low_stock_threshold)

    def reserve(self, quantity: int) -> StockLevel:
        if quantity > self.available:
            raise ValueError(f"cannot reserve {quantity} of {self.sku}: {self.available} available")
        return replace(self, reserved=self.reserved + quantity)

    def release(self, quantity: int) -> StockLevel:
        return replace(self, reserved=max(0, self.reserved - quantity))


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
