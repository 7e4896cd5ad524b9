"""Wires the notifier: the routing file in force, work items, deliveries, their APIs, and what
its worker runs (one table, `workers`)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from orderguard.services.notifier import handlers as routing_use_cases
from orderguard.services.notifier.api import build_router
from orderguard.services.notifier.channels.registry import configured_kinds, open_channels
from orderguard.services.notifier.console import pages as console_pages
from orderguard.services.notifier.deliveries import api as deliveries_api
from orderguard.services.notifier.deliveries import service as deliveries
from orderguard.services.notifier.deliveries.domain import Planner
from orderguard.services.notifier.deliveries.templates import Templates
from orderguard.services.notifier.retention import notifier_retentions
from orderguard.services.notifier.routing_api import build_routing_router
from orderguard.services.notifier.routing_in_force import RoutingInForce, reload_on_sighup
from orderguard.services.notifier.work_items import api as work_items_api
from orderguard.services.notifier.work_items import handlers as work_items
from orderguard.services.notifier.work_items.domain import SlaPolicy
from orderguard.shared.logging import get_logger
from orderguard.shared.retention import retention_job
from orderguard.shared.runtime import Runtime, ServiceDefinition
from orderguard.shared.scheduler import ScheduledJob
from orderguard.shared.topics import TEAMS
from orderguard.shared.wiring import UseCaseConsumer, Workers

log = get_logger(__name__)

# Deliveries sent per job run: each run holds its rows locked while it sends them.
DELIVERY_BATCH = 50


def routing_in_force(runtime: Runtime) -> RoutingInForce:
    """The routing file in force, hot-reloaded (on change and on SIGHUP); an invalid one stops
    start-up, naming every problem (later, an invalid change is rejected and the old file
    stays)."""

    def load() -> RoutingInForce:
        routing = RoutingInForce(
            runtime.settings.routing_file, runtime.settings.routing_reload_interval_s
        )
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
    settings = runtime.settings
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
        settings = runtime.settings
        kinds = configured_kinds(settings.channels)
        log.info("notification channels configured", channels=sorted(kinds))
        return Planner(settings.channels, settings.deliveries, kinds, Templates())

    return runtime.once("planner", build)


def workers(runtime: Runtime) -> Workers:
    topics = runtime.topics
    routing = routing_in_force(runtime)
    policy = sla_policy(runtime)
    plan = planner(runtime)
    queues = {topics.queue(team): team for team in TEAMS}
    sender = deliveries.Sender(
        partial(open_channels, runtime.settings.channels),
        runtime.settings.deliveries,
        topics.notifications_dead,
    )
    return Workers(
        consumers=[
            # Each anomaly (firing, then its resolution) to its team queues, once per
            # fingerprint, through silences, inhibition and route groups.
            UseCaseConsumer(
                "notifier.router",
                [topics.anomalies],
                frozenset({"anomaly.detected.v1"}),
                lambda uow, events: routing_use_cases.route_anomalies(
                    uow, routing.current(), topics.queue, events
                ),
            ),
            # The notifications each routed anomaly asks for, once per queue and channel.
            UseCaseConsumer(
                "notifier.notifications",
                list(queues),
                frozenset({"anomaly.routed.v1"}),
                lambda uow, events: routing_use_cases.record_notifications(
                    uow, events, plan, topics.notifications_dead
                ),
            ),
            UseCaseConsumer(
                "notifier.work-items",
                list(queues),
                frozenset({"anomaly.routed.v1"}),
                lambda uow, events: work_items.open_work_items(
                    uow, policy, topics.work_items, queues, events
                ),
            ),
            UseCaseConsumer(
                "notifier.work-items.clearances",
                [topics.anomalies],
                frozenset({"anomaly.detected.v1"}),
                lambda uow, events: work_items.clear_work_items(
                    uow, policy, topics.work_items, events
                ),
            ),
            # Customer-facing requests become planned deliveries (sent by notifier.deliveries).
            UseCaseConsumer(
                "notifier.deliveries",
                [topics.notification_requests],
                frozenset({"notification.requested.v1"}),
                lambda uow, events: deliveries.plan_requested_deliveries(
                    uow, plan, topics.notifications_dead, events
                ),
            ),
        ],
        jobs=[
            ScheduledJob(
                "notifier.route-group-flush",
                lambda uow, limit: routing_use_cases.flush_route_groups(
                    uow, routing.current(), topics.queue, limit
                ),
                batch_max=200,
            ),
            ScheduledJob(
                "notifier.silence-release",
                lambda uow, limit: routing_use_cases.release_silenced(
                    uow, routing.current(), topics.queue, limit
                ),
                batch_max=200,
            ),
            ScheduledJob(
                "notifier.work-items.escalate",
                lambda uow, limit: work_items.escalate_due(uow, policy, topics, limit),
            ),
            ScheduledJob(
                "notifier.work-items.remind",
                lambda uow, limit: work_items.remind_due(uow, policy, topics, limit),
            ),
            ScheduledJob(
                "notifier.work-items.open-gauge",
                lambda uow, limit: work_items.refresh_open_gauge(uow, TEAMS),
            ),
            ScheduledJob("notifier.deliveries", sender.send_due, batch_max=DELIVERY_BATCH),
            *(retention_job(r, runtime.settings) for r in notifier_retentions(runtime.settings)),
        ],
    )


DEFINITION = ServiceDefinition(
    name="notifier",
    migrations=Path(__file__).parent / "migrations",
    routers=lambda runtime: [
        build_router(runtime),
        build_routing_router(runtime, routing_in_force(runtime)),
        work_items_api.build_router(runtime, sla_policy(runtime)),
        deliveries_api.build_router(runtime),
        console_pages.build_router(runtime, sla_policy(runtime)),
    ],
    workers=workers,
)
