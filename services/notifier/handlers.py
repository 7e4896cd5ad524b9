"""Notifier use cases: route anomalies to team queues through the routing pipeline (live,
over the notifier's tables); flush due groups and release silenced anomalies (scheduled jobs);
record the notifications routes ask for."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from orderguard.services.notifier import repository
from orderguard.services.notifier.channels.base import CHANNEL_KINDS
from orderguard.services.notifier.deliveries.domain import DeliveryRequest, Planner
from orderguard.services.notifier.deliveries.service import request_deliveries
from orderguard.services.notifier.domain import notifications_for
from orderguard.services.notifier.router.group import Group
from orderguard.services.notifier.router.inhibit import Inhibition
from orderguard.services.notifier.router.pipeline import Arrival, RoutingPipeline
from orderguard.services.notifier.router.postgres_store import PostgresStore
from orderguard.services.notifier.router.route import Destination
from orderguard.services.notifier.router.silence import Silenced
from orderguard.services.notifier.router.store import AnomalyState, Hold
from orderguard.services.notifier.routing import RouteMatch, RoutingTree
from orderguard.shared import metrics
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected, AnomalyRouted
from orderguard.shared.logging import get_logger
from orderguard.shared.tracing import child_of
from orderguard.shared.uow import UnitOfWork

ROUTER_SOURCE = "/orderguard/notifier/router"

log = get_logger(__name__)

QueueTopic = Callable[[str], str]


class LiveOutlet:
    """The pipeline's decisions, live: anomaly.routed.v1 on the team queues (outbox, in the
    same transaction), metrics once it commits, and logs."""

    def __init__(self, uow: UnitOfWork, queue_topic: QueueTopic) -> None:
        self.uow = uow
        self.queue_topic = queue_topic

    def publish(
        self, anomaly: AnomalyDetected, to: Destination, traceparent: str | None, key: str
    ) -> None:
        data = AnomalyRouted(
            anomaly=anomaly,
            route=to.route,
            queue=to.queue,
            channels=list(to.channels),
            routed_at=self.uow.now,
            group_key=to.group_key,
            severity=to.severity or None,
        )
        self.uow.forward(
            self.queue_topic(to.queue),
            Envelope(
                type="anomaly.routed.v1",
                source=ROUTER_SOURCE,
                subject=anomaly.fingerprint,
                data=data.model_dump(mode="json"),
                traceparent=child_of(traceparent),
            ),
            key=key,
        )

    def count(self, queue: str, outcome: str) -> None:
        self.uow.after_commit(metrics.ANOMALIES_ROUTED.labels(queue, outcome).inc)

    def held(self, state: AnomalyState, hold: Hold, after_routing: bool) -> None:
        outcome = "silenced" if isinstance(hold, Silenced) else "inhibited"
        self.uow.after_commit(metrics.ANOMALIES_SUPPRESSED.labels(outcome).inc)
        log.info(
            "routed anomaly inhibited by a later source" if after_routing else f"anomaly {outcome}",
            fingerprint=state.fingerprint,
            rule=state.anomaly.rule,
            silence_id=str(hold.silence.id) if isinstance(hold, Silenced) else None,
            inhibit_rule=hold.rule if isinstance(hold, Inhibition) else None,
            source_fingerprint=hold.source_fingerprint if isinstance(hold, Inhibition) else None,
        )

    def released(self, state: AnomalyState, reason: str) -> None:
        self.uow.after_commit(metrics.ANOMALIES_RELEASED.labels(reason).inc)
        log.info("suppressed anomaly released", fingerprint=state.fingerprint, reason=reason)

    def routed(
        self, anomaly: AnomalyDetected, matches: Sequence[RouteMatch], event_id: str
    ) -> None:
        # Labels and summary may carry customer data: log identifiers only.
        fields = {
            "fingerprint": anomaly.fingerprint,
            "rule": anomaly.rule,
            "severity": anomaly.severity,
            "routes": [match.route for match in matches],
            "queues": [match.queue for match in matches],
            "event_id": event_id,
        }
        if any(match.is_default for match in matches):
            log.warning("anomaly matched no route; sent to the default queue", **fields)
        else:
            log.info("anomaly routed", **fields)

    def flushed(self, group: Group, kind: str, published: int) -> None:
        self.uow.after_commit(metrics.ROUTE_GROUP_FLUSHES.labels(kind).inc)
        log.info(
            "route group flushed",
            group_key=group.key,
            kind=kind,
            published=published,
            next_flush_at=group.next_flush_at.isoformat() if group.next_flush_at else None,
        )

    def note(self, what: str, **fields: Any) -> None:
        log.info(what, **fields)


def live_pipeline(uow: UnitOfWork, tree: RoutingTree, queue_topic: QueueTopic) -> RoutingPipeline:
    return RoutingPipeline(PostgresStore(uow.conn), tree, LiveOutlet(uow, queue_topic), uow.now)


async def route_anomalies(
    uow: UnitOfWork, tree: RoutingTree, queue_topic: QueueTopic, events: list[Event]
) -> None:
    """Route each anomaly once per fingerprint (its resolution once more, to the same places)."""
    arrivals = [
        Arrival(event.data, event.id, event.envelope.traceparent)
        for event in events
        if isinstance(event.data, AnomalyDetected)
    ]
    await live_pipeline(uow, tree, queue_topic).arrive(arrivals)


async def flush_route_groups(
    uow: UnitOfWork, tree: RoutingTree, queue_topic: QueueTopic, limit: int
) -> int:
    """Scheduled: flush the groups whose timer is due."""
    return await live_pipeline(uow, tree, queue_topic).flush_due_groups(limit)


async def release_silenced(
    uow: UnitOfWork, tree: RoutingTree, queue_topic: QueueTopic, limit: int
) -> int:
    """Scheduled: route the still-firing anomalies whose silence has ended."""
    return await live_pipeline(uow, tree, queue_topic).release_silenced(limit)


async def record_notifications(
    uow: UnitOfWork, events: list[Event], planner: Planner, dead_topic: str
) -> None:
    """One notification per (fingerprint, queue, channel), however often it is routed again:
    in_app ones are rows here; outgoing channels become deliveries (sent by the delivery job)."""
    wanted = []
    outgoing = []
    for event in events:
        if not isinstance(event.data, AnomalyRouted):
            continue
        notifications, unsupported = notifications_for(event.data, event.id)
        wanted += notifications
        sent_out = tuple(channel for channel in unsupported if channel in CHANNEL_KINDS)
        if sent_out:
            outgoing.append(DeliveryRequest.of_routed(event.data, sent_out, event.id))
        for channel in unsupported:
            if channel in sent_out:
                continue
            uow.after_commit(metrics.NOTIFICATIONS.labels("unsupported", "skipped").inc)
            log.warning(
                "routed anomaly names a channel the notifier cannot deliver on",
                channel=channel[:50],
                fingerprint=event.data.anomaly.fingerprint,
                queue=event.data.queue,
            )
    await request_deliveries(uow, planner, outgoing, dead_topic)
    recorded = await repository.record_notifications(uow.conn, wanted)
    for notification in wanted:
        outcome = "recorded" if notification.id in recorded else "duplicate"
        # Several routes may hand the same fingerprint to one queue: one notification still.
        recorded.discard(notification.id)
        uow.after_commit(metrics.NOTIFICATIONS.labels(notification.channel, outcome).inc)
        log.info(
            "notification recorded" if outcome == "recorded" else "notification already recorded",
            notification_id=str(notification.id),
            channel=notification.channel,
            queue=notification.queue,
            rule=notification.rule,
            fingerprint=notification.fingerprint,
        )
