"""Engine consumers of the work items: routed groups from the team queues, and clearances."""

from __future__ import annotations

from aiokafka import TopicPartition

from orderguard.services.notifier.work_items.domain import SlaPolicy
from orderguard.services.notifier.work_items.handlers import Routed, apply_clearance, apply_routed
from orderguard.shared.engine import Event
from orderguard.shared.events.anomalies import AnomalyDetected, AnomalyRouted
from orderguard.shared.topics import TEAMS, Topics
from orderguard.shared.uow import UnitOfWork


class OpenWorkItems:
    """Every routed group on `queues.<team>` becomes (or joins) a work item of that team."""

    group = "notifier.work-items"
    event_types = frozenset({"anomaly.routed.v1"})

    def __init__(self, policy: SlaPolicy, topics: Topics) -> None:
        self.policy = policy
        self._events_topic = topics.work_items
        # The team is the queue topic's: a bounded set, whatever the event says.
        self._team_of = {topics.queue(team): team for team in TEAMS}
        self.topics = list(self._team_of)

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        await apply_routed(
            uow,
            self.policy,
            self._events_topic,
            [
                Routed(self._team_of[event.topic], event.data, event.id)
                for event in events
                if isinstance(event.data, AnomalyRouted)
            ],
        )

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached: items are read (under their group's lock) by each batch."""


class ClearWorkItems:
    """Anomalies that resolve (stock recovered, parcel scanned again) clear their work items.

    The router routes firing anomalies only, so clearances are read where detectors write them.
    """

    group = "notifier.work-items.clearances"
    event_types = frozenset({"anomaly.detected.v1"})

    def __init__(self, policy: SlaPolicy, topics: Topics) -> None:
        self.policy = policy
        self.topics = [topics.anomalies]
        self._events_topic = topics.work_items

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        for event in events:
            anomaly = event.data
            if isinstance(anomaly, AnomalyDetected) and anomaly.status == "resolved":
                await apply_clearance(
                    uow, self.policy, self._events_topic, anomaly.fingerprint, anomaly.event_time
                )

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached."""
