"""Start-up wiring: the routing file is loaded and checked before the notifier consumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderguard.services.notifier.bootstrap import DEFINITION, handlers
from orderguard.services.notifier.consumers import RecordNotifications, RouteAnomalies
from orderguard.services.notifier.deliveries.consumers import DeliverRequests
from orderguard.services.notifier.routing import RoutingFileError
from orderguard.shared.runtime import Runtime
from orderguard.shared.settings import Settings


def runtime(routing_file: str | None) -> Runtime:
    settings = Settings(routing_file=routing_file, topic_prefix="p.")
    return Runtime(DEFINITION, settings, frozenset({"api", "workers"}))


def test_consumers_use_the_shipped_routing_file_by_default() -> None:
    router, recorder, *_, deliverer = handlers(runtime(None))  # type: ignore[arg-type]
    assert isinstance(router, RouteAnomalies) and isinstance(recorder, RecordNotifications)
    assert (router.group, router.topics) == ("notifier.router", ["p.anomalies.detected"])
    assert router.routing.tree.source.endswith("notifier/routing.yaml")
    assert recorder.group == "notifier.notifications"
    assert recorder.topics == [
        "p.queues.warehouse",
        "p.queues.logistics",
        "p.queues.finance",
        "p.queues.customer_service",
        "p.queues.risk",
    ]
    assert isinstance(deliverer, DeliverRequests)
    assert (deliverer.group, deliverer.topics) == (
        "notifier.deliveries",
        ["p.notifications.requests"],
    )


@pytest.mark.parametrize("build", [handlers, DEFINITION.routers], ids=["workers", "api"])
def test_an_invalid_routing_file_stops_start_up_naming_the_problem(tmp_path: Path, build) -> None:  # type: ignore[no-untyped-def]
    file = tmp_path / "routing.yaml"
    file.write_text("route:\n  queue: warehose\n")
    with pytest.raises(RoutingFileError, match=r"route\.queue: unknown queue 'warehose'"):
        build(runtime(str(file)))
