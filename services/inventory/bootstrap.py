"""Wires the inventory service: its API, its consumers and its detectors."""

from __future__ import annotations

from pathlib import Path

from orderguard.services.inventory.api import build_router
from orderguard.services.inventory.consumers import ReserveStockForOrders
from orderguard.services.inventory.rules import LowStock
from orderguard.shared.engine.detectors import DetectorHandler
from orderguard.shared.runtime import Runtime, ServiceDefinition


def handlers(runtime: Runtime) -> list[object]:
    topics = runtime.topics
    return [
        ReserveStockForOrders(topics.orders, topics.inventory),
        DetectorHandler(
            LowStock(default_threshold=runtime.settings.default_low_stock_threshold),
            topics=[topics.inventory],
            anomalies_topic=topics.anomalies,
            service="inventory",
        ),
    ]


DEFINITION = ServiceDefinition(
    name="inventory",
    migrations=Path(__file__).parent / "migrations",
    routers=lambda runtime: [build_router(runtime)],
    handlers=handlers,  # type: ignore[arg-type]
)
