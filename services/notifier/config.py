"""What the notifier loads once per process, for its API and its workers alike: the routing
file in force, the work items' SLA policy, and the delivery planner."""

from __future__ import annotations

from orderguard.services.notifier.channels.registry import configured_kinds
from orderguard.services.notifier.deliveries.domain import Planner
from orderguard.services.notifier.deliveries.templates import Templates
from orderguard.services.notifier.routing_in_force import RoutingInForce, reload_on_sighup
from orderguard.services.notifier.settings import NotifierSettings
from orderguard.services.notifier.work_items.domain import SlaPolicy
from orderguard.shared.logging import get_logger
from orderguard.shared.runtime import Runtime

log = get_logger(__name__)


def routing_in_force(runtime: Runtime) -> RoutingInForce:
    """The routing file in force, hot-reloaded (on change and on SIGHUP); an invalid one stops
    start-up, naming every problem (later, an invalid change is rejected and the old file
    stays)."""

    def load() -> RoutingInForce:
        own = runtime.settings.section(NotifierSettings)
        routing = RoutingInForce(own.routing_file, own.routing_reload_interval_s)
        reload_on_sighup(routing)
        tree = routing.tree
        log.info(
            "routing loaded",
            source=tree.source,
            version=tree.version,
            routes=sum(1 for _ in tree.config.route.walk()),
        )
        return routing

    return runtime.once("routing", load)


def sla_policy(runtime: Runtime) -> SlaPolicy:
    """Work items' times per severity: to resolve, the routing file's processing time limits
    (as loaded at start-up); to claim, remind and reopen, settings work_item_*. An invalid
    policy stops start-up."""
    settings = runtime.settings.section(NotifierSettings)
    routing = routing_in_force(runtime).tree
    return runtime.once(
        "work_item_sla",
        lambda: SlaPolicy.of_seconds(
            settings.work_item_claim_within_s,
            {p: routing.time_limit(p).total_seconds() for p in ("P1", "P2", "P3", "P4")},
            settings.work_item_reminder_every_s,
            settings.work_item_reopen_window_s,
            settings.work_item_max_tier,
        ),
    )


def planner(runtime: Runtime) -> Planner:
    """Turns requests into deliveries on the channels this deployment configured."""

    def build() -> Planner:
        settings = runtime.settings.section(NotifierSettings)
        kinds = configured_kinds(settings.channels)
        log.info("notification channels configured", channels=sorted(kinds))
        return Planner(settings.channels, settings.deliveries, kinds, Templates())

    return runtime.once("planner", build)
