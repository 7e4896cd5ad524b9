"""Engine consumers of the logistics service."""

from __future__ import annotations

from aiokafka import TopicPartition

from orderguard.services.logistics.handlers import CarrierRule, apply_scans, create_shipments
from orderguard.shared.engine import Event
from orderguard.shared.topics import Topics
from orderguard.shared.uow import UnitOfWork


class CreateShipmentsForPaidOrders:
    """A shipment per paid order, exactly once per order (its id derives from the order's)."""

    group = "logistics.shipments"
    event_types = frozenset({"order.paid.v1"})

    def __init__(self, topics: Topics, carriers: CarrierRule) -> None:
        self.topics = [topics.orders]
        self._topics = topics
        self._carriers = carriers

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        await create_shipments(uow, events, self._topics, self._carriers)

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached: every batch reads (and locks) what it touches."""


class ApplyCarrierScans:
    """Applies carrier scans from `carriers.scans` (published by carriers, or by our webhook),
    once per carrier and scan id; late and out-of-order scans are kept without moving back."""

    group = "logistics.scans"
    event_types = frozenset({"carrier.scan.v1"})

    def __init__(self, topics: Topics) -> None:
        self.topics = [topics.carrier_scans]
        self._topics = topics

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        await apply_scans(uow, events, self._topics)

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached: every batch reads (and locks) what it touches."""
