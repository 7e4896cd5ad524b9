"""Pure notifier rules: what matchers see, duplicates within a batch, notifications per channel."""

from __future__ import annotations

from datetime import UTC, datetime

from orderguard.services.notifier.domain import (
    notification_id,
    notifications_for,
    routing_labels,
)
from orderguard.shared.events.anomalies import AnomalyDetected, AnomalyRouted

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def anomaly(fingerprint: str = "fp-1", **labels: str) -> AnomalyDetected:
    return AnomalyDetected(
        rule="stock.low",
        fingerprint=fingerprint,
        severity="P3",
        team="warehouse",
        labels={"sku": "X-1", "warehouse": "main", **labels},
        summary="SKU X-1 in main: 2 available, below its threshold of 5",
        event_time=NOW,
        detected_at=NOW,
        source_event_id="e-1",
    )


def test_matchers_see_labels_plus_rule_severity_and_team_which_cannot_be_overridden() -> None:
    labels = routing_labels(anomaly(rule="forged", team="risk"))
    assert labels == {
        "sku": "X-1",
        "warehouse": "main",
        "rule": "stock.low",
        "severity": "P3",
        "team": "warehouse",
    }


def routed_event(channels: list[str], queue: str = "warehouse") -> AnomalyRouted:
    return AnomalyRouted(
        anomaly=anomaly(), route="r", queue=queue, channels=channels, routed_at=NOW
    )


def test_one_in_app_notification_per_routed_anomaly() -> None:
    notifications, unsupported = notifications_for(routed_event(["in_app"]), "routed-1")
    assert unsupported == []
    [notification] = notifications
    assert (
        notification.channel,
        notification.queue,
        notification.rule,
        notification.fingerprint,
    ) == (
        "in_app",
        "warehouse",
        "stock.low",
        "fp-1",
    )
    assert notification.status == "recorded"
    assert notification.labels == {"sku": "X-1", "warehouse": "main"}
    assert notification.routed_event_id == "routed-1"


def test_no_channels_means_queue_only_and_unknown_channels_are_reported() -> None:
    assert notifications_for(routed_event([]), "r") == ([], [])
    notifications, unsupported = notifications_for(routed_event(["in_app", "sms", "in_app"]), "r")
    assert [n.channel for n in notifications] == ["in_app"]
    assert unsupported == ["sms"]


def test_the_notification_id_is_the_same_for_a_redelivery_and_differs_per_queue_and_channel() -> (
    None
):
    first, _ = notifications_for(routed_event(["in_app"]), "routed-1")
    again, _ = notifications_for(routed_event(["in_app"]), "routed-2")
    other_queue, _ = notifications_for(routed_event(["in_app"], queue="risk"), "routed-3")
    assert first[0].id == again[0].id == notification_id("fp-1", "warehouse", "in_app")
    assert other_queue[0].id != first[0].id
