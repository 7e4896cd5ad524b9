"""Wires the inventory service: its API, its consumers and its detectors."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from orderguard.services.inventory import api
from orderguard.services.inventory.consumers import ReserveStockForOrders
from orderguard.services.inventory.rules import RULES
from orderguard.shared.detection.config import in_force
from orderguard.shared.detection.consumer import detector_handlers
from orderguard.shared.runtime import Runtime, ServiceDefinition


def handlers(runtime: Runtime) -> list[object]:
    topics = runtime.topics
    return [
        ReserveStockForOrders(topics),
        *detector_handlers(runtime, RULES, [topics.inventory]),
    ]


def routers(runtime: Runtime) -> list[APIRouter]:
    in_force(runtime)  # an invalid detectors file stops the API's start, not its first request
    return [api.router]


DEFINITION = ServiceDefinition(
    name="inventory",
    migrations=Path(__file__).parent / "migrations",
    routers=routers,
    handlers=handlers,  # type: ignore[arg-type]
)
