"""Wires the notifier: the routing file in force, work items, deliveries, their APIs,
consumers and jobs."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fastapi import APIRouter

from orderguard.services.notifier import api, routing_api
from orderguard.services.notifier.channels.registry import open_channels
from orderguard.services.notifier.config import planner, routing_in_force, sla_policy
from orderguard.services.notifier.console import pages as console_pages
from orderguard.services.notifier.consumers import (
    RecordNotifications,
    RouteAnomalies,
    router_jobs,
)
from orderguard.services.notifier.deliveries import api as deliveries_api
from orderguard.services.notifier.deliveries.consumers import DeliverRequests
from orderguard.services.notifier.deliveries.service import Sender
from orderguard.services.notifier.retention import notifier_retentions
from orderguard.services.notifier.work_items import api as work_items_api
from orderguard.services.notifier.work_items.consumers import ClearWorkItems, OpenWorkItems
from orderguard.services.notifier.work_items.jobs import work_item_jobs
from orderguard.shared.logging import get_logger
from orderguard.shared.retention import retention_job
from orderguard.shared.runtime import Runtime, ServiceDefinition
from orderguard.shared.scheduler import ScheduledJob

log = get_logger(__name__)

# Deliveries sent per job run: each run holds its rows locked while it sends them.
DELIVERY_BATCH = 50


def handlers(runtime: Runtime) -> list[object]:
    return [
        RouteAnomalies(routing_in_force(runtime), runtime.topics),
        RecordNotifications(runtime.topics, planner(runtime)),
        OpenWorkItems(sla_policy(runtime), runtime.topics),
        ClearWorkItems(sla_policy(runtime), runtime.topics),
        DeliverRequests(planner(runtime), runtime.topics),
    ]


def jobs(runtime: Runtime) -> list[ScheduledJob]:
    sender = Sender(
        partial(open_channels, runtime.settings.channels),
        runtime.settings.deliveries,
        runtime.topics.notifications_dead,
    )
    return [
        *router_jobs(routing_in_force(runtime), runtime.topics),
        *work_item_jobs(sla_policy(runtime), runtime.topics),
        ScheduledJob("notifier.deliveries", sender.send_due, batch_max=DELIVERY_BATCH),
        *(retention_job(r, runtime.settings) for r in notifier_retentions(runtime.settings)),
    ]


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
    handlers=handlers,  # type: ignore[arg-type]
    jobs=jobs,
)
