"""Engine consumers of the notifier: the router and the notification recorder; and the router's
scheduled jobs (group flushes, release of anomalies whose silence ended)."""

from __future__ import annotations

from aiokafka import TopicPartition

from orderguard.services.notifier.deliveries.domain import Planner
from orderguard.services.notifier.handlers import (
    flush_route_groups,
    record_notifications,
    release_silenced,
    route_anomalies,
)
from orderguard.services.notifier.routing_in_force import RoutingInForce
from orderguard.shared.engine import Event
from orderguard.shared.scheduler import ScheduledJob
from orderguard.shared.topics import TEAMS, Topics
from orderguard.shared.uow import UnitOfWork


class RouteAnomalies:
    """Routes each anomaly (firing, then its resolution) to its team queues once per
    fingerprint, through silences, inhibition and route groups."""

    group = "notifier.router"
    event_types = frozenset({"anomaly.detected.v1"})

    def __init__(self, routing: RoutingInForce, topics: Topics) -> None:
        self.routing = routing
        self.topics = [topics.anomalies]
        self._queue_topic = topics.queue

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        await route_anomalies(uow, self.routing.current(), self._queue_topic, events)

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached: anomaly states and groups are read (and locked) by each batch."""


def router_jobs(routing: RoutingInForce, topics: Topics) -> list[ScheduledJob]:
    async def flush(uow: UnitOfWork, limit: int) -> int:
        return await flush_route_groups(uow, routing.current(), topics.queue, limit)

    async def release(uow: UnitOfWork, limit: int) -> int:
        return await release_silenced(uow, routing.current(), topics.queue, limit)

    return [
        ScheduledJob("notifier.route-group-flush", flush, batch_max=200),
        ScheduledJob("notifier.silence-release", release, batch_max=200),
    ]


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
