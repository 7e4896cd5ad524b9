"""Wires the notifier: the routing file in force, its API, its consumers and jobs."""

from __future__ import annotations

from pathlib import Path

from orderguard.services.notifier.api import build_router
from orderguard.services.notifier.consumers import (
    RecordNotifications,
    RouteAnomalies,
    router_jobs,
)
from orderguard.services.notifier.routing_api import build_routing_router
from orderguard.services.notifier.routing_in_force import RoutingInForce
from orderguard.shared.logging import get_logger
from orderguard.shared.runtime import Runtime, ServiceDefinition

log = get_logger(__name__)


def routing_in_force(runtime: Runtime) -> RoutingInForce:
    """The routing file in force, hot-reloaded; an invalid one stops start-up, naming every
    problem (later, an invalid change is rejected and the old file stays)."""

    def load() -> RoutingInForce:
        routing = RoutingInForce(
            runtime.settings.routing_file, runtime.settings.routing_reload_interval_s
        )
        tree = routing.tree
        log.info(
            "routing loaded",
            source=tree.source,
            version=tree.version,
            routes=sum(1 for _ in tree.config.route.walk()),
        )
        return routing

    return runtime.once("routing", load)


def handlers(runtime: Runtime) -> list[object]:
    return [
        RouteAnomalies(routing_in_force(runtime), runtime.topics),
        RecordNotifications(runtime.topics),
    ]


DEFINITION = ServiceDefinition(
    name="notifier",
    migrations=Path(__file__).parent / "migrations",
    routers=lambda runtime: [
        build_router(runtime),
        build_routing_router(runtime, routing_in_force(runtime)),
    ],
    handlers=handlers,  # type: ignore[arg-type]
    jobs=lambda runtime: router_jobs(routing_in_force(runtime), runtime.topics),
)
