"""The five services by name; each definition is imported only when its service runs."""

from __future__ import annotations

import importlib

from orderguard.shared.runtime import ServiceDefinition
from orderguard.shared.settings import SERVICES


def definition_of(service: str) -> ServiceDefinition:
    if service not in SERVICES:
        raise KeyError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    module = importlib.import_module(f"orderguard.services.{service}.bootstrap")
    return module.DEFINITION  # type: ignore[no-any-return]
