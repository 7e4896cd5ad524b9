"""The recycle bin repository in memory: what `services/order/recycle_bin/handlers.py` reads
and writes (the orders' timelines go to `inmemory.order.OrderRepository`)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from orderguard.services.order.recycle_bin.domain import (
    BinEntry,
    BinState,
    Cause,
    OrderFacts,
)


class RecycleBinRepository:
    """Stores copies, as a database would: a change not saved is not kept."""

    def __init__(self) -> None:
        self.orders: dict[str, OrderFacts] = {}
        self.entries: dict[str, BinEntry] = {}
        self.causes: list[tuple[str, str, Cause]] = []  # (entry id, order id, cause)
        self.purged: list[tuple[str, tuple[str, ...]]] = []

    @staticmethod
    def _copy(entry: BinEntry) -> BinEntry:
        stored = copy.deepcopy(entry)
        stored.events.clear()
        return stored

    def _where(self, wanted: Any) -> list[BinEntry]:
        return [self._copy(e) for _, e in sorted(self.entries.items()) if wanted(e)]

    async def lock_orders(self, conn: Any, order_ids: Iterable[str]) -> dict[str, OrderFacts]:
        return {i: self.orders[i] for i in sorted(set(order_ids)) if i in self.orders}

    async def open_entry(self, conn: Any, order_id: str) -> BinEntry | None:
        found = self._where(lambda e: e.order_id == order_id and e.state is BinState.IN_BIN)
        return found[0] if found else None

    async def seen_causes(self, conn: Any, order_id: str) -> set[str]:
        return {cause.key for _, owner, cause in self.causes if owner == order_id}

    async def entries_of_order(self, conn: Any, order_id: str) -> list[BinEntry]:
        found = self._where(lambda e: e.order_id == order_id)
        return sorted(found, key=lambda e: (e.moved_at, e.entry_id), reverse=True)

    async def open_entries_of_case(self, conn: Any, case_id: str, order_id: str) -> list[BinEntry]:
        return self._where(
            lambda e: (
                e.state is BinState.IN_BIN and (e.case_id == case_id or e.order_id == order_id)
            )
        )

    async def add_entry(self, conn: Any, entry: BinEntry) -> None:
        assert entry.entry_id not in self.entries
        self.entries[entry.entry_id] = self._copy(entry)

    async def save_entry(self, conn: Any, entry: BinEntry) -> None:
        assert entry.entry_id in self.entries
        self.entries[entry.entry_id] = self._copy(entry)

    async def add_cause(self, conn: Any, entry: BinEntry, cause: Cause) -> None:
        self.causes.append((entry.entry_id, entry.order_id, cause))

    async def lock_quiet_entries(self, conn: Any, before: datetime, limit: int) -> list[BinEntry]:
        return self._where(
            lambda e: e.state is BinState.IN_BIN and e.case_id is None and e.last_cause_at < before
        )[:limit]

    async def lock_entries_past_retention(
        self, conn: Any, before: datetime, limit: int
    ) -> list[BinEntry]:
        return self._where(
            lambda e: e.state is BinState.ARCHIVED and e.archived_at and e.archived_at < before
        )[:limit]

    async def purge_personal_data(
        self, conn: Any, entry: BinEntry, fields: Sequence[str], now: datetime
    ) -> None:
        self.purged.append((entry.order_id, tuple(fields)))
