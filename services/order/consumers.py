"""Engine consumers of the order service."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import TopicPartition

from orderguard.services.order.domain import Actor
from orderguard.services.order.handlers import (
    OrderConfig,
    apply_payment_events,
    apply_shipment_events,
    record_inventory_outcomes,
)
from orderguard.shared.engine import Event
from orderguard.shared.uow import UnitOfWork


class RecordInventoryOutcomes:
    """Puts what inventory did for an order on its timeline: reserved, failed (shortages), released.
    A failed reservation holds the order as out of stock and tells the customer what they can do.

    Exactly once: the engine drops event ids it has applied, the timeline keeps one row per
    (order, event), and an order already held as out of stock is not held again.
    """

    group = "order.inventory-outcomes"
    event_types = frozenset(
        {"inventory.reserved.v1", "inventory.reservation_failed.v1", "inventory.released.v1"}
    )

    topics: Sequence[str]

    def __init__(self, inventory_topic: str, config: OrderConfig) -> None:
        self.topics = [inventory_topic]
        self._config = config
        self._actor = Actor("consumer", self.group)

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        await record_inventory_outcomes(uow, self._config, events, self._actor)

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached: every batch reads (and locks) the orders it touches."""


class ApplyPayments:
    """Payment outcomes from payment services: paid, payment failed (retry allowed), held on an
    amount mismatch. A payment fact applies once per order, whatever event id it comes under."""

    group = "order.payments"
    event_types = frozenset(
        {"payment.succeeded.v1", "payment.failed.v1", "payment.amount_mismatch.v1"}
    )

    topics: Sequence[str]

    def __init__(self, payments_topic: str, config: OrderConfig) -> None:
        self.topics = [payments_topic]
        self._config = config
        self._actor = Actor("consumer", self.group)

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        await apply_payment_events(uow, self._config, events, self._actor)

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached: every batch reads (and locks) the orders it touches."""


class ApplyShipments:
    """Carriers' facts: dispatched -> shipped, delivered -> delivered; a fact the order already
    reflects (redelivered, or resent under a new id) changes nothing."""

    group = "order.shipments"
    event_types = frozenset({"shipment.dispatched.v1", "shipment.delivered.v1"})

    topics: Sequence[str]

    def __init__(self, logistics_topic: str, config: OrderConfig) -> None:
        self.topics = [logistics_topic]
        self._config = config
        self._actor = Actor("consumer", self.group)

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        await apply_shipment_events(uow, self._config, events, self._actor)

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached: every batch reads (and locks) the orders it touches."""
