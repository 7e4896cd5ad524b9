"""Engine consumer of customer-facing requests: notification.requested.v1 → planned deliveries."""

from __future__ import annotations

from aiokafka import TopicPartition

from orderguard.services.notifier.deliveries.domain import DeliveryRequest, Planner
from orderguard.services.notifier.deliveries.service import request_deliveries
from orderguard.shared.engine import Event
from orderguard.shared.events.notifications import NotificationRequested
from orderguard.shared.topics import Topics
from orderguard.shared.uow import UnitOfWork


class DeliverRequests:
    """Plans the deliveries each request asks for; the `notifier.deliveries` job sends them."""

    group = "notifier.deliveries"
    event_types = frozenset({"notification.requested.v1"})

    def __init__(self, planner: Planner, topics: Topics) -> None:
        self.planner = planner
        self.topics = [topics.notification_requests]
        self._dead_topic = topics.notifications_dead

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        requests = [
            DeliveryRequest.of_request(event.data, event.id)
            for event in events
            if isinstance(event.data, NotificationRequested)
        ]
        await request_deliveries(uow, self.planner, requests, self._dead_topic)

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached: deliveries are read (and locked) by each batch."""
