"""Engine consumers of the order service."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import TopicPartition

from orderguard.services.order.domain import Actor
from orderguard.services.order.handlers import record_inventory_outcomes
from orderguard.shared.engine import Event
from orderguard.shared.uow import UnitOfWork


class RecordInventoryOutcomes:
    """Puts what inventory did for an order on its timeline: reserved, failed (shortages), released.

    Exactly once: the engine drops event ids it has applied, and the timeline keeps one row per
    (order, event) whatever arrives. The order's status is left as it is.
    """

    group = "order.inventory-outcomes"
    event_types = frozenset(
        {"inventory.reserved.v1", "inventory.reservation_failed.v1", "inventory.released.v1"}
    )

    topics: Sequence[str]

    def __init__(self, inventory_topic: str) -> None:
        self.topics = [inventory_topic]
        self._actor = Actor("consumer", self.group)

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        await record_inventory_outcomes(uow, events, self._actor)

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached: every batch writes straight to the timeline."""
