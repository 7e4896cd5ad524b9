"""The order repository in memory: what `services/order/handlers.py` reads and writes."""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from orderguard.services.order.domain import Order, OrderStatus, TimelineEntry, customer_type_of


class OrderRepository:
    """Stores copies, as a database would: a change not saved is not kept."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.timelines: dict[str, list[TimelineEntry]] = defaultdict(list)
        self.payment_facts: set[tuple[str, str, str]] = set()

    @staticmethod
    def _copy(order: Order) -> Order:
        stored = copy.deepcopy(order)
        stored.events.clear()
        return stored

    async def add(
        self, conn: Any, order: Order, timeline: Iterable[TimelineEntry], outbox: Any
    ) -> None:
        """The events stay in the unit of work's outbox, where the tests read them."""
        assert order.order_id not in self.orders
        earlier = sum(1 for o in self.orders.values() if o.customer_id == order.customer_id)
        order.customer_type = customer_type_of(order.member_level, earlier)
        self.orders[order.order_id] = self._copy(order)
        await self.record(conn, [(order.order_id, entry) for entry in timeline])

    async def save(self, conn: Any, orders: Iterable[Order]) -> None:
        for order in orders:
            assert order.order_id in self.orders
            self.orders[order.order_id] = self._copy(order)

    async def get(self, conn: Any, order_id: str, for_update: bool = False) -> Order | None:
        found = self.orders.get(order_id)
        return self._copy(found) if found else None

    async def get_with_timeline(
        self, conn: Any, order_id: str
    ) -> tuple[Order, list[TimelineEntry]] | None:
        found = await self.get(conn, order_id)
        return None if found is None else (found, await self.timeline(conn, order_id))

    async def get_many(self, conn: Any, order_ids: Iterable[str]) -> dict[str, Order]:
        return {i: self._copy(self.orders[i]) for i in sorted(set(order_ids)) if i in self.orders}

    def _due(self, wanted: Any, limit: int) -> list[Order]:
        return [self._copy(o) for _, o in sorted(self.orders.items()) if wanted(o)][:limit]

    async def unpaid_past_deadline(self, conn: Any, now: datetime, limit: int) -> list[Order]:
        unpaid = (OrderStatus.PLACED, OrderStatus.PAYMENT_FAILED)
        return self._due(
            lambda o: o.status in unpaid and o.payment_due_at and o.payment_due_at <= now, limit
        )

    async def holds_to_release(self, conn: Any, now: datetime, limit: int) -> list[Order]:
        held = OrderStatus.ON_HOLD
        return self._due(
            lambda o: o.status is held and o.hold_release_at and o.hold_release_at <= now, limit
        )

    async def delivered_before(self, conn: Any, before: datetime, limit: int) -> list[Order]:
        done = OrderStatus.DELIVERED
        return self._due(
            lambda o: o.status is done and o.delivered_at and o.delivered_at <= before, limit
        )

    async def first_times(self, conn: Any, facts: Sequence[tuple[str, str, str]]) -> list[bool]:
        firsts = []
        for fact in facts:
            firsts.append(fact not in self.payment_facts)
            self.payment_facts.add(fact)
        return firsts

    async def record(self, conn: Any, entries: Iterable[tuple[str, TimelineEntry]]) -> None:
        for order_id, entry in entries:
            known = {e.event_id for e in self.timelines[order_id] if e.event_id}
            if entry.event_id is None or entry.event_id not in known:
                self.timelines[order_id].append(entry)

    async def timeline(self, conn: Any, order_id: str) -> list[TimelineEntry]:
        return list(self.timelines[order_id])

    async def has_event(self, conn: Any, order_id: str, event_type: str) -> bool:
        return any(e.event_type == event_type for e in self.timelines[order_id])
