"""Wires the inventory service: its API, its consumers and its detectors."""

from __future__ import annotations

from pathlib import Path

from orderguard.services.inventory.api import build_router
from orderguard.services.inventory.consumers import ReserveStockForOrders
from orderguard.services.inventory.rules import RULES, LowStock
from orderguard.shared.detection.config import in_force
from orderguard.shared.detection.consumer import detector_handlers
from orderguard.shared.runtime import Runtime, ServiceDefinition


def handlers(runtime: Runtime) -> list[object]:
    topics = runtime.topics
    return [
        ReserveStockForOrders(topics),
        *detector_handlers(runtime, RULES, [topics.inventory]),
    ]


DEFINITION = ServiceDefinition(
    name="inventory",
    migrations=Path(__file__).parent / "migrations",
    routers=lambda runtime: [build_router(runtime, in_force(runtime).rule(LowStock.name))],
    handlers=handlers,  # type: ignore[arg-type]
)
