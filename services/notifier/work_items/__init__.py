"""Work items: what teams work on for the anomalies routed to their queues."""
