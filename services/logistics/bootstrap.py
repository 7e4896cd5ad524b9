"""Wires the logistics service: its API, its consumers, its detectors and its scheduled jobs."""

from __future__ import annotations

from pathlib import Path

from orderguard.services.logistics.api import build_router
from orderguard.services.logistics.consumers import ApplyCarrierScans, CreateShipmentsForPaidOrders
from orderguard.services.logistics.handlers import (
    CarrierRule,
    CompensationPolicy,
    compensate_delays,
)
from orderguard.services.logistics.rules import RULES
from orderguard.shared.contract.ingest import build_ingest_router
from orderguard.shared.detection.consumer import detector_handlers
from orderguard.shared.events.carriers import CarrierScan
from orderguard.shared.retention import Retention, retention_job
from orderguard.shared.runtime import Runtime, ServiceDefinition
from orderguard.shared.scheduler import ScheduledJob
from orderguard.shared.settings import Settings
from orderguard.shared.uow import UnitOfWork


def handlers(runtime: Runtime) -> list[object]:
    settings = runtime.settings
    topics = runtime.topics
    carriers = CarrierRule(
        settings.logistics_default_carrier, settings.logistics_carrier_by_warehouse
    )
    found: list[object] = [
        CreateShipmentsForPaidOrders(topics, carriers),
        ApplyCarrierScans(topics),
    ]
    return [*found, *detector_handlers(runtime, RULES, [topics.logistics])]


def jobs(runtime: Runtime) -> list[ScheduledJob]:
    settings = runtime.settings
    topics = runtime.topics
    policy = CompensationPolicy(
        by_reason=settings.logistics_delay_compensation,
        overdue_after_s=settings.logistics_overdue_compensation_after_s,
        stalled_after_s=settings.logistics_stall_compensation_after_s,
    )

    async def run(uow: UnitOfWork, limit: int) -> int:
        return await compensate_delays(uow, topics, policy, limit)

    return [
        ScheduledJob("logistics.delay-compensation", run),
        retention_job(webhook_receipts_retention(settings), settings),
    ]


def webhook_receipts_retention(settings: Settings) -> Retention:
    """Receipts past retention are long stale (their signatures are refused before any replay
    check), and the scans consumer still applies a scan id once."""
    return Retention(
        "carrier_webhook_receipts",
        "carrier_webhook_receipts",
        "received_at",
        settings.dedup_retention_s,
    )


DEFINITION = ServiceDefinition(
    name="logistics",
    migrations=Path(__file__).parent / "migrations",
    # Carriers without Kafka: the signed webhook, or POST /events with an API key (carriers.scans).
    routers=lambda runtime: [build_router(runtime), build_ingest_router(runtime, [CarrierScan])],
    handlers=handlers,  # type: ignore[arg-type]
    jobs=jobs,
)
