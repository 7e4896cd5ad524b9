"""The composition root's knowledge of the services: each by name (its definition is imported
only when it runs), and the detector rules they declare, for what every process checks or
replays across services (the detectors file is shared; a backtest replays every rule)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from orderguard.services.aftersales import rules as aftersales
from orderguard.services.inventory import rules as inventory
from orderguard.services.logistics import rules as logistics
from orderguard.services.order import rules as order
from orderguard.shared.detection.config import ConfigurableRule
from orderguard.shared.detection.rule import Rule
from orderguard.shared.runtime import ServiceDefinition
from orderguard.shared.settings import SERVICES

# The services' stream rules: each `rules.RULES`, the very tuple its bootstrap runs.
STREAM_RULES: tuple[Callable[[Any], Rule], ...] = (
    *inventory.RULES,
    *aftersales.RULES,
    *logistics.RULES,
    *order.RULES,
)
# Anomalies raised by a use case while it applies an event, configured like the rules.
USE_CASE_ANOMALIES = (*inventory.USE_CASE_ANOMALIES, *order.USE_CASE_ANOMALIES)


def definition_of(service: str) -> ServiceDefinition:
    if service not in SERVICES:
        raise KeyError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    module = importlib.import_module(f"orderguard.services.{service}.bootstrap")
    return module.DEFINITION  # type: ignore[no-any-return]


def rule_catalogue() -> list[ConfigurableRule]:
    """Everything the detectors file configures: every stream rule and use-case anomaly."""
    return [*STREAM_RULES, *USE_CASE_ANOMALIES]  # type: ignore[list-item]
