"""Wires the notifier: the routing file in force, work items, deliveries, their APIs, and what
its worker runs (one table, `workers`)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fastapi import APIRouter

from orderguard.services.notifier import api, routing_api
from orderguard.services.notifier import handlers as routing_use_cases
from orderguard.services.notifier.channels.registry import open_channels
from orderguard.services.notifier.config import planner, routing_in_force, sla_policy
from orderguard.services.notifier.console import pages as console_pages
from orderguard.services.notifier.deliveries import api as deliveries_api
from orderguard.services.notifier.deliveries import service as deliveries
from orderguard.services.notifier.retention import notifier_retentions
from orderguard.services.notifier.settings import NotifierSettings
from orderguard.services.notifier.work_items import api as work_items_api
from orderguard.services.notifier.work_items import handlers as work_items
from orderguard.shared.logging import get_logger
from orderguard.shared.retention import retention_job
from orderguard.shared.runtime import Runtime, ServiceDefinition
from orderguard.shared.scheduler import ScheduledJob
from orderguard.shared.topics import TEAMS
from orderguard.shared.wiring import UseCaseConsumer, Workers

log = get_logger(__name__)

# Deliveries sent per job run: each run holds its rows locked while it sends them.
DELIVERY_BATCH = 50


def workers(runtime: Runtime) -> Workers:
    topics = runtime.topics
    routing = routing_in_force(runtime)
    policy = sla_policy(runtime)
    plan = planner(runtime)
    queues = {topics.queue(team): team for team in TEAMS}
    sender = deliveries.Sender(
        partial(open_channels, runtime.settings.section(NotifierSettings).channels),
        runtime.settings.section(NotifierSettings).deliveries,
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
            *(
                retention_job(r, runtime.settings)
                for r in notifier_retentions(runtime.settings.section(NotifierSettings))
            ),
        ],
    )


def routers(runtime: Runtime) -> list[APIRouter]:
    # Loaded now: an invalid routing file or SLA policy stops the API's start too.
    routing_in_force(runtime)
    sla_policy(runtime)
    return [
        api.router,
        routing_api.router,
        work_items_api.router,
        deliveries_api.router,
        console_pages.build_router(runtime, sla_policy(runtime)),
    ]


DEFINITION = ServiceDefinition(
    name="notifier",
    migrations=Path(__file__).parent / "migrations",
    routers=routers,
    workers=workers,
)
