"""Wires the aftersales service: its API, its copy of orders, and its detectors (first-response
SLA breaches, repeated refunds)."""

from __future__ import annotations

from pathlib import Path

from orderguard.services.aftersales.api import build_router
from orderguard.services.aftersales.consumers import LearnDeliveries, LearnOrderFacts
from orderguard.services.aftersales.rules import CaseSlaBreached, RepeatedRefunds
from orderguard.shared.detection.config import in_force
from orderguard.shared.detection.consumer import detector_handlers
from orderguard.shared.runtime import Runtime, ServiceDefinition


def handlers(runtime: Runtime) -> list[object]:
    topics = runtime.topics
    found: list[object] = [
        LearnOrderFacts(topics),
        LearnDeliveries(topics),
    ]
    rules = (CaseSlaBreached, RepeatedRefunds)
    return [*found, *detector_handlers(runtime, rules, [topics.aftersales])]


DEFINITION = ServiceDefinition(
    name="aftersales",
    migrations=Path(__file__).parent / "migrations",
    # The API shows each case's first-response due time from the same SLA configuration.
    routers=lambda runtime: [build_router(runtime, in_force(runtime).rule(CaseSlaBreached.name))],
    handlers=handlers,  # type: ignore[arg-type]
)
