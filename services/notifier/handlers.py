"""Notifier use cases: route anomalies to team queues; record the notifications routes ask for."""

from __future__ import annotations

from collections.abc import Callable

from orderguard.services.notifier import repository
from orderguard.services.notifier.channels.base import CHANNEL_KINDS
from orderguard.services.notifier.deliveries.domain import DeliveryRequest, Planner
from orderguard.services.notifier.deliveries.service import request_deliveries
from orderguard.services.notifier.domain import (
    first_per_fingerprint,
    notifications_for,
    routed,
    routing_labels,
)
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


async def route_anomalies(
    uow: UnitOfWork, tree: RoutingTree, queue_topic: Callable[[str], str], events: list[Event]
) -> None:
    """Publish one anomaly.routed.v1 per matching route, once per fingerprint ever."""
    firing = [
        (event, event.data)
        for event in events
        if isinstance(event.data, AnomalyDetected) and event.data.status == "firing"
    ]
    decisions = {anomaly.fingerprint: tree.route(routing_labels(anomaly)) for _, anomaly in firing}
    first = first_per_fingerprint(firing)
    claimed = await repository.claim_fingerprints(
        uow.conn,
        [
            repository.RoutedFingerprint(
                fingerprint=anomaly.fingerprint,
                rule=anomaly.rule,
                routes=[match.route for match in decisions[anomaly.fingerprint]],
                queues=[match.queue for match in decisions[anomaly.fingerprint]],
                event_id=event.id,
            )
            for event, anomaly in first
        ],
    )
    to_route = {id(event) for event, anomaly in first if anomaly.fingerprint in claimed}
    for event, anomaly in firing:
        matches = decisions[anomaly.fingerprint]
        if id(event) not in to_route:
            for match in matches:
                uow.after_commit(metrics.ANOMALIES_ROUTED.labels(match.queue, "duplicate").inc)
            log.info(
                "anomaly already routed",
                fingerprint=anomaly.fingerprint,
                rule=anomaly.rule,
                event_id=event.id,
            )
            continue
        for match in matches:
            _publish_routed(
                uow, queue_topic(match.queue), routed(anomaly, match, uow.now), event.envelope
            )
            uow.after_commit(
                metrics.ANOMALIES_ROUTED.labels(
                    match.queue, "unrouted" if match.is_default else "routed"
                ).inc
            )
        _log_routed(anomaly, matches, event.id)


def _publish_routed(uow: UnitOfWork, topic: str, data: AnomalyRouted, cause: Envelope) -> None:
    fingerprint = data.anomaly.fingerprint
    uow.publish(
        topic,
        Envelope(
            type="anomaly.routed.v1",
            source=ROUTER_SOURCE,
            subject=fingerprint,
            data=data.model_dump(mode="json"),
            traceparent=child_of(cause.traceparent),
        ),
        key=fingerprint,
    )


def _log_routed(anomaly: AnomalyDetected, matches: list[RouteMatch], event_id: str) -> None:
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
