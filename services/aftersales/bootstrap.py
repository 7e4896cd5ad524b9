"""Wires the aftersales service: its API, its copy of orders, and its detectors (first-response
SLA breaches, repeated refunds)."""

from __future__ import annotations

from pathlib import Path

from orderguard.services.aftersales.api import build_router
from orderguard.services.aftersales.consumers import LearnDeliveries, LearnOrderFacts
from orderguard.services.aftersales.rules import CaseSlaBreached, RepeatedRefunds
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
    found: list[object] = [
        LearnOrderFacts(topics.orders),
        LearnDeliveries(topics.name("logistics.events")),
    ]
    for rule in (CaseSlaBreached, RepeatedRefunds):
        rule_config = config.rule(rule.name)
        if rule_config.enabled:
            found.append(
                DetectorHandler(
                    rule(rule_config),  # type: ignore[arg-type]
                    topics=[topics.name("aftersales.events")],
                    anomalies_topic=topics.anomalies,
                    service="aftersales",
                    clocks=PartitionClocks.from_settings(runtime.settings),
                )
            )
    return found


DEFINITION = ServiceDefinition(
    name="aftersales",
    migrations=Path(__file__).parent / "migrations",
    # The API shows each case's first-response due time from the same SLA configuration.
    routers=lambda runtime: [build_router(runtime, detectors(runtime).rule(CaseSlaBreached.name))],
    handlers=handlers,  # type: ignore[arg-type]
)
