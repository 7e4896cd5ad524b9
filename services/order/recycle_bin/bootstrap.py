"""What the recycle bin adds to the order service: its router, its consumers, its jobs."""

from __future__ import annotations

from orderguard.services.order.recycle_bin.api import router
from orderguard.services.order.recycle_bin.consumers import MoveOnAfterSalesEvents, MoveOnAnomalies
from orderguard.services.order.recycle_bin.scheduled import jobs
from orderguard.shared.engine import BatchHandler
from orderguard.shared.runtime import Runtime

__all__ = ["handlers", "jobs", "router"]


def handlers(runtime: Runtime) -> list[BatchHandler]:
    topics = runtime.topics
    return [
        MoveOnAfterSalesEvents(topics.aftersales, topics.orders),
        MoveOnAnomalies(
            topics.anomalies, topics.orders, runtime.settings.recycle_bin_anomaly_rules
        ),
    ]
