"""Engine consumers of the aftersales service."""

from __future__ import annotations

from aiokafka import TopicPartition

from orderguard.services.aftersales.handlers import apply_order_facts, apply_shipment_facts
from orderguard.shared.engine import Event
from orderguard.shared.topics import Topics
from orderguard.shared.uow import UnitOfWork


class LearnOrderFacts:
    """Keeps aftersales' own copy of what it needs about orders (orders.events): lines, prices,
    what was paid, the customer and channel.

    Exactly once: the engine drops event ids it applied; the same fact resent under a new id
    upserts the same values (payment facts keep their first value).
    """

    group = "aftersales.order-facts"
    event_types = frozenset({"order.placed.v1", "order.paid.v1", "order.refund_requested.v1"})

    def __init__(self, topics: Topics) -> None:
        self.topics = [topics.orders]
        self._topics = topics

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        await apply_order_facts(uow, self._topics, events)

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached: every batch writes straight to the tables."""


class LearnDeliveries:
    """When each order's parcel was delivered (logistics.events): the no-reason return window
    counts from it. The first delivery reported for an order stays; resends change nothing.
    A parcel declared lost opens a case for the customer, once per shipment."""

    group = "aftersales.deliveries"
    event_types = frozenset({"shipment.delivered.v1", "shipment.exception_reported.v1"})

    def __init__(self, topics: Topics) -> None:
        self.topics = [topics.logistics]
        self._topics = topics

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        await apply_shipment_facts(uow, self._topics, events)

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached: every batch writes straight to the tables."""
