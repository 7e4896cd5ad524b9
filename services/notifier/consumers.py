"""Engine consumers of the notifier: the router and the notification recorder."""

from __future__ import annotations

from aiokafka import TopicPartition

from orderguard.services.notifier.deliveries.domain import Planner
from orderguard.services.notifier.handlers import record_notifications, route_anomalies
from orderguard.services.notifier.routing import RoutingTree
from orderguard.shared.engine import Event
from orderguard.shared.topics import TEAMS, Topics
from orderguard.shared.uow import UnitOfWork


class RouteAnomalies:
    """Routes each firing anomaly to its team queues once per fingerprint."""

    group = "notifier.router"
    event_types = frozenset({"anomaly.detected.v1"})

    def __init__(self, tree: RoutingTree, topics: Topics) -> None:
        self.tree = tree
        self.topics = [topics.anomalies]
        self._queue_topic = topics.queue

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        await route_anomalies(uow, self.tree, self._queue_topic, events)

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached: the routed fingerprints are read (and locked) by each batch."""


class RecordNotifications:
    """Records the notifications each routed anomaly asks for, once per queue and channel."""

    group = "notifier.notifications"
    event_types = frozenset({"anomaly.routed.v1"})

    def __init__(self, topics: Topics, planner: Planner) -> None:
        self.topics = [topics.queue(team) for team in TEAMS]
        self.planner = planner
        self._dead_topic = topics.notifications_dead

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        await record_notifications(uow, events, self.planner, self._dead_topic)

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached."""
