"""Engine consumers of the aftersales service."""

from __future__ import annotations

from aiokafka import TopicPartition

from orderguard.services.aftersales.handlers import learn_order_facts
from orderguard.shared.engine import Event
from orderguard.shared.uow import UnitOfWork


class LearnOrderFacts:
    """Keeps aftersales' own copy of what it needs about orders (orders.events): lines, prices,
    what was paid, the customer and channel.

    Exactly once: the engine drops event ids it applied; the same fact resent under a new id
    upserts the same values (payment facts keep their first value).
    """

    group = "aftersales.order-facts"
    event_types = frozenset({"order.placed.v1", "order.paid.v1"})

    def __init__(self, orders_topic: str) -> None:
        self.topics = [orders_topic]

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        await learn_order_facts(uow, events)

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached: every batch writes straight to the tables."""


class LearnDeliveries:
    """When each order's parcel was delivered (logistics.events): the no-reason return window
    counts from it. The first delivery reported for an order stays; resends change nothing."""

    group = "aftersales.deliveries"
    event_types = frozenset({"shipment.delivered.v1"})

    def __init__(self, logistics_topic: str) -> None:
        self.topics = [logistics_topic]

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        await learn_order_facts(uow, events)

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached: every batch writes straight to the tables."""
