"""Engine consumers of the inventory service."""

from __future__ import annotations

from aiokafka import TopicPartition

from orderguard.services.inventory.handlers import Inventory
from orderguard.shared.engine import Event
from orderguard.shared.events.orders import (
    OrderCancelled,
    OrderPlaced,
    OrderShipped,
    ReservationRequested,
)
from orderguard.shared.topics import Topics
from orderguard.shared.uow import UnitOfWork


class ReserveStockForOrders:
    """Reserves stock for placed orders, commits it for shipped ones and releases it for
    cancelled ones: each exactly once per order, guarded by the reservation's state (so the
    same fact under a new event id changes nothing either)."""

    group = "inventory.reservations"
    event_types = frozenset(
        {
            "order.placed.v1",
            "order.reservation_requested.v1",
            "order.cancelled.v1",
            "order.shipped.v1",
        }
    )

    def __init__(self, topics: Topics) -> None:
        self.topics = [topics.orders]
        self._topics = topics

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        inventory = Inventory(uow, self._topics)
        keys = {
            (line.sku, event.data.warehouse)
            for event in events
            if isinstance(event.data, OrderPlaced)
            for line in event.data.lines
        }
        await inventory.load(keys, [event.data.order_id for event in events])  # type: ignore[attr-defined]
        for event in events:
            if isinstance(event.data, OrderPlaced | ReservationRequested):
                inventory.reserve_for(event.data, event.envelope)
            elif isinstance(event.data, OrderShipped):
                inventory.commit_for(event.data, event.envelope)
            elif isinstance(event.data, OrderCancelled):
                inventory.release_for(event.data, event.envelope)
        await inventory.save()

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached: every batch reads (and locks) what it touches."""
