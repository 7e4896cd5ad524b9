"""Wires the inventory service: its API, its consumers and its detectors."""

from __future__ import annotations

from pathlib import Path

from orderguard.services.inventory.api import build_router
from orderguard.services.inventory.consumers import ReserveStockForOrders
from orderguard.services.inventory.rules import RULES, LowStock
from orderguard.shared import detector_config
from orderguard.shared.detector_config import DetectorConfig
from orderguard.shared.engine.deadlines import PartitionClocks
from orderguard.shared.engine.detectors import DetectorHandler
from orderguard.shared.logging import get_logger
from orderguard.shared.runtime import Runtime, ServiceDefinition

log = get_logger(__name__)


def detectors(runtime: Runtime) -> DetectorConfig:
    """The detectors configuration in force; an invalid file stops start-up, naming every problem."""

    def load() -> DetectorConfig:
        config = detector_config.load_for(runtime.settings)
        log.info("detectors configured", source=config.source)
        return config

    return runtime.once("detectors", load)


def handlers(runtime: Runtime) -> list[object]:
    topics = runtime.topics
    config = detectors(runtime)
    found: list[object] = [ReserveStockForOrders(topics)]
    for rule in RULES:
        configured = config.rule(rule.name)
        if configured.enabled:
            found.append(
                DetectorHandler(
                    rule(configured),  # type: ignore[arg-type]
                    topics=[topics.inventory],
                    anomalies_topic=topics.anomalies,
                    service="inventory",
                    clocks=PartitionClocks.from_settings(runtime.settings),
                )
            )
    return found


DEFINITION = ServiceDefinition(
    name="inventory",
    migrations=Path(__file__).parent / "migrations",
    routers=lambda runtime: [build_router(runtime, detectors(runtime).rule(LowStock.name))],
    handlers=handlers,  # type: ignore[arg-type]
)
