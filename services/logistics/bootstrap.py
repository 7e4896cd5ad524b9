"""Wires the logistics service. Its domain arrives in its own issue; today it runs with its schema
(the engine's tables), health, readiness and metrics, so deployments and dashboards are complete.
"""

from __future__ import annotations

from orderguard.shared.runtime import ServiceDefinition

DEFINITION = ServiceDefinition(name="logistics", migrations=None)
