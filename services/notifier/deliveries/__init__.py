"""Deliveries of messages to people on outgoing channels: planned from requests and routed
anomalies, sent and retried by a scheduled job, every attempt recorded."""
