"""What the notifier keeps of the tables that grow with traffic (shared/retention.py runs it)."""

from __future__ import annotations

from orderguard.services.notifier.settings import NotifierSettings
from orderguard.shared.retention import Retention


def notifier_retentions(settings: NotifierSettings) -> list[Retention]:
    keep = settings.retention
    return [
        # The router's dedup claim per fingerprint (and the suppressions that cascade with it):
        # once resolved for this long, a late copy of the anomaly would be routed again.
        Retention(
            "anomaly_states.resolved",
            "anomaly_states",
            "updated_at",
            keep.resolved_anomalies_s,
            where="status = 'resolved'",
        ),
        Retention("anomaly_states.open", "anomaly_states", "updated_at", keep.open_anomalies_s),
        # Where a routed anomaly went, kept so its resolution follows it there.
        Retention(
            "routed_anomalies.resolved",
            "routed_anomalies",
            "resolved_at",
            keep.resolved_anomalies_s,
            where="resolved_at IS NOT NULL",
        ),
        Retention("routed_anomalies.open", "routed_anomalies", "routed_at", keep.open_anomalies_s),
        # Resolved members leave their group at its next flush: what stays is still firing.
        Retention("route_group_members", "route_group_members", "added_at", keep.open_anomalies_s),
        Retention(
            "silenced_anomalies", "silenced_anomalies", "muted_at", keep.resolved_anomalies_s
        ),
        # Finished deliveries are the delivery log (and the dedup record within its window).
        Retention(
            "deliveries",
            "deliveries",
            "updated_at",
            keep.deliveries_s,
            where="status IN ('delivered', 'failed')",
            key="id",
            children=[("delivery_attempts", "delivery_id")],
        ),
        # Rate-limit windows are read only while current.
        Retention(
            "channel_rate_windows",
            "channel_rate_windows",
            "window_start",
            max(24 * 3600.0, 2 * settings.deliveries.rate_window_s),
        ),
    ]
