-- depends: notifier-0007.timeline-actor-names

-- Analytics count escalations by time (work_items.analytics.escalations): a small partial
-- index, rather than a scan of every timeline entry.
CREATE INDEX work_item_timeline_escalated_at ON work_item_timeline (at) WHERE what = 'escalated';
