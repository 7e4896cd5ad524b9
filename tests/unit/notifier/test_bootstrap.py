"""Start-up wiring: the routing file is loaded and checked before the notifier consumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderguard.cli.services_registry import OrderguardSettings, rule_catalogue
from orderguard.services.notifier.bootstrap import DEFINITION, routing_in_force
from orderguard.services.notifier.routing import RoutingFileError
from orderguard.shared.runtime import Runtime


def runtime(routing_file: str | None) -> Runtime:
    settings = OrderguardSettings(notifier={"routing_file": routing_file}, topic_prefix="p.")
    return Runtime(DEFINITION, settings, frozenset({"api", "workers"}), rule_catalogue())


def test_consumers_use_the_shipped_routing_file_by_default() -> None:
    notifier = runtime(None)
    consumers = {c.name: list(c.topics) for c in notifier.engine_consumers()}
    assert routing_in_force(notifier).tree.source.endswith("notifier/routing.yaml")
    queues = [
        "p.queues.warehouse",
        "p.queues.logistics",
        "p.queues.finance",
        "p.queues.customer_service",
        "p.queues.risk",
    ]
    assert consumers == {
        "notifier.router": ["p.anomalies.detected"],
        "notifier.notifications": queues,
        "notifier.work-items": queues,
        "notifier.work-items.clearances": ["p.anomalies.detected"],
        "notifier.deliveries": ["p.notifications.requests"],
    }


def _workers(runtime: Runtime) -> object:
    return runtime.engine_consumers()


@pytest.mark.parametrize("build", [_workers, DEFINITION.routers], ids=["workers", "api"])
def test_an_invalid_routing_file_stops_start_up_naming_the_problem(tmp_path: Path, build) -> None:  # type: ignore[no-untyped-def]
    file = tmp_path / "routing.yaml"
    file.write_text("route:\n  queue: warehose\n")
    with pytest.raises(RoutingFileError, match=r"route\.queue: unknown queue 'warehose'"):
        build(runtime(str(file)))
