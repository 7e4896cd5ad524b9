"""Routed anomalies and the notifications they cause: pure rules, no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from orderguard.shared.events.anomalies import AnomalyDetected, AnomalyRouted

# Channels this slice delivers on: in_app is a row in the notifier's own table.
DELIVERED_CHANNELS = frozenset({"in_app"})
# Namespace of notification ids: one id per (fingerprint, queue, channel), whoever computes it.
_NOTIFICATION_IDS = uuid.UUID("5b0f4a8e-2a43-4c3e-9a0c-6f7c1d2e9b11")


def routing_labels(anomaly: AnomalyDetected) -> dict[str, str]:
    """What matchers see: the anomaly's labels, with its rule, severity and team authoritative."""
    return {
        **anomaly.labels,
        "rule": anomaly.rule,
        "severity": anomaly.severity,
        "team": anomaly.team,
    }


@dataclass(frozen=True, slots=True)
class Notification:
    id: uuid.UUID
    channel: str
    queue: str
    route: str
    rule: str
    fingerprint: str
    severity: str
    summary: str
    labels: dict[str, str]
    routed_event_id: str
    status: str = "recorded"


def notification_id(fingerprint: str, queue: str, channel: str) -> uuid.UUID:
    return uuid.uuid5(_NOTIFICATION_IDS, f"{fingerprint}\x1f{queue}\x1f{channel}")


def notifications_for(
    event: AnomalyRouted, routed_event_id: str
) -> tuple[list[Notification], list[str]]:
    """One notification per channel the route names; and the channels we cannot deliver on."""
    anomaly = event.anomaly
    notifications = [
        Notification(
            id=notification_id(anomaly.fingerprint, event.queue, channel),
            channel=channel,
            queue=event.queue,
            route=event.route,
            rule=anomaly.rule,
            fingerprint=anomaly.fingerprint,
            severity=anomaly.severity,
            summary=anomaly.summary,
            labels=dict(anomaly.labels),
            routed_event_id=routed_event_id,
        )
        for channel in dict.fromkeys(event.channels)
        if channel in DELIVERED_CHANNELS
    ]
    unsupported = [
        channel for channel in dict.fromkeys(event.channels) if channel not in DELIVERED_CHANNELS
    ]
    return notifications, unsupported
