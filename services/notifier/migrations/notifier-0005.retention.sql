-- depends: notifier-0004.deliveries

-- Retention (services/notifier/retention.py) finds expired rows by these.
CREATE INDEX anomaly_states_updated_at ON anomaly_states (updated_at);
CREATE INDEX routed_anomalies_resolved_at ON routed_anomalies (resolved_at)
    WHERE resolved_at IS NOT NULL;
CREATE INDEX route_group_members_added_at ON route_group_members (added_at);
CREATE INDEX silenced_anomalies_muted_at ON silenced_anomalies (muted_at);
CREATE INDEX deliveries_finished_updated_at ON deliveries (updated_at)
    WHERE status IN ('delivered', 'failed');
CREATE INDEX channel_rate_windows_start ON channel_rate_windows (window_start);
