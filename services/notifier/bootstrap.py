"""Wires the notifier: the routing tree, its API, its consumers and the delivery job."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from orderguard.services.notifier.api import build_router
from orderguard.services.notifier.channels.registry import configured_kinds, open_channels
from orderguard.services.notifier.consumers import RecordNotifications, RouteAnomalies
from orderguard.services.notifier.deliveries import api as deliveries_api
from orderguard.services.notifier.deliveries.consumers import DeliverRequests
from orderguard.services.notifier.deliveries.domain import Planner
from orderguard.services.notifier.deliveries.service import Sender
from orderguard.services.notifier.deliveries.templates import Templates
from orderguard.services.notifier.routing import RoutingTree, load_routing
from orderguard.shared.logging import get_logger
from orderguard.shared.runtime import Runtime, ServiceDefinition
from orderguard.shared.scheduler import ScheduledJob

log = get_logger(__name__)

# Deliveries sent per job run: each run holds its rows locked while it sends them.
DELIVERY_BATCH = 50


def routing_tree(runtime: Runtime) -> RoutingTree:
    """The routing file in force; an invalid one stops start-up, naming every problem."""

    def load() -> RoutingTree:
        tree = load_routing(runtime.settings.routing_file)
        log.info(
            "routing loaded", source=tree.source, routes=sum(1 for _ in tree.config.route.walk())
        )
        return tree

    return runtime.once("routing", load)


def planner(runtime: Runtime) -> Planner:
    """Turns requests into deliveries on the channels this deployment configured."""

    def build() -> Planner:
        settings = runtime.settings
        kinds = configured_kinds(settings.channels)
        log.info("notification channels configured", channels=sorted(kinds))
        return Planner(settings.channels, settings.deliveries, kinds, Templates())

    return runtime.once("planner", build)


def handlers(runtime: Runtime) -> list[object]:
    return [
        RouteAnomalies(routing_tree(runtime), runtime.topics),
        RecordNotifications(runtime.topics, planner(runtime)),
        DeliverRequests(planner(runtime), runtime.topics),
    ]


def jobs(runtime: Runtime) -> list[ScheduledJob]:
    sender = Sender(
        partial(open_channels, runtime.settings.channels),
        runtime.settings.deliveries,
        runtime.topics.notifications_dead,
    )
    return [ScheduledJob("notifier.deliveries", sender.send_due, batch_max=DELIVERY_BATCH)]


DEFINITION = ServiceDefinition(
    name="notifier",
    migrations=Path(__file__).parent / "migrations",
    routers=lambda runtime: [
        build_router(runtime, routing_tree(runtime)),
        deliveries_api.build_router(runtime),
    ],
    handlers=handlers,  # type: ignore[arg-type]
    jobs=jobs,
)
