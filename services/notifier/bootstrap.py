"""Wires the notifier: the routing tree, its API and its two consumers."""

from __future__ import annotations

from pathlib import Path

from orderguard.services.notifier.api import build_router
from orderguard.services.notifier.consumers import RecordNotifications, RouteAnomalies
from orderguard.services.notifier.routing import RoutingTree, load_routing
from orderguard.shared.logging import get_logger
from orderguard.shared.runtime import Runtime, ServiceDefinition

log = get_logger(__name__)


def routing_tree(runtime: Runtime) -> RoutingTree:
    """The routing file in force; an invalid one stops start-up, naming every problem."""

    def load() -> RoutingTree:
        tree = load_routing(runtime.settings.routing_file)
        log.info(
            "routing loaded", source=tree.source, routes=sum(1 for _ in tree.config.route.walk())
        )
        return tree

    return runtime.once("routing", load)


def handlers(runtime: Runtime) -> list[object]:
    return [
        RouteAnomalies(routing_tree(runtime), runtime.topics),
        RecordNotifications(runtime.topics),
    ]


DEFINITION = ServiceDefinition(
    name="notifier",
    migrations=Path(__file__).parent / "migrations",
    routers=lambda runtime: [build_router(runtime, routing_tree(runtime))],
    handlers=handlers,  # type: ignore[arg-type]
)
