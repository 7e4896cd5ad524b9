"""Wires the inventory service: its API, its consumers and its detectors."""

from __future__ import annotations

from pathlib import Path

from orderguard.services.inventory import api
from orderguard.services.inventory.consumers import ReserveStockForOrders
from orderguard.services.inventory.rules import RULES
from orderguard.shared.engine.detectors import detector_handlers
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
    routers=lambda runtime: [api.router],
    handlers=handlers,  # type: ignore[arg-type]
)
