"""logistics: shipments, carrier tracking and their anomalies (stalled, overdue, carrier exceptions)."""
