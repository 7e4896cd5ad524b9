"""The inventory repository in memory: what `services/inventory/handlers.py` reads and writes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from orderguard.services.inventory.domain import (
    LedgerEntry,
    ReservationLine,
    StockKey,
    StockLevel,
)


class InventoryRepository:
    def __init__(self) -> None:
        self.levels: dict[StockKey, StockLevel] = {}
        self.ledger: list[LedgerEntry] = []
        self.reservations: dict[tuple[str, str, str], ReservationLine] = {}

    async def lock_levels(self, conn: Any, keys: Iterable[StockKey]) -> dict[StockKey, StockLevel]:
        return {key: self.levels[key] for key in set(keys) if key in self.levels}

    async def save_levels(self, conn: Any, levels: Iterable[StockLevel]) -> None:
        for level in levels:
            self.levels[(level.sku, level.warehouse)] = level

    async def append_ledger(self, conn: Any, entries: Iterable[LedgerEntry], at: datetime) -> None:
        self.ledger.extend(entries)

    async def reservations_of(
        self, conn: Any, order_ids: Iterable[str], lock: bool = True
    ) -> dict[str, list[ReservationLine]]:
        wanted = set(order_ids)
        found: dict[str, list[ReservationLine]] = {}
        for key in sorted(self.reservations):
            if key[0] in wanted:
                found.setdefault(key[0], []).append(self.reservations[key])
        return found

    async def save_reservations(self, conn: Any, lines: Iterable[ReservationLine]) -> None:
        for line in lines:
            self.reservations[(line.order_id, line.sku, line.warehouse)] = line
