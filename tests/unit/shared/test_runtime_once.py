"""Configuration a service loads is loaded once per process and shared by its API and workers."""

from __future__ import annotations

from orderguard.cli.services_registry import OrderguardSettings, rule_catalogue
from orderguard.services.inventory.bootstrap import DEFINITION
from orderguard.shared.runtime import Runtime


def test_once_loads_a_named_piece_of_configuration_a_single_time() -> None:
    runtime = Runtime(
        DEFINITION, OrderguardSettings(), frozenset({"api", "workers"}), rule_catalogue()
    )
    loads: list[int] = []

    def load() -> object:
        loads.append(1)
        return object()

    first = runtime.once("routing", load)
    assert runtime.once("routing", load) is first
    assert runtime.once("detectors", load) is not first
    assert len(loads) == 2
