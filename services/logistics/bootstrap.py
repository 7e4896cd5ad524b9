"""Wires the logistics service: its API and what its worker runs (one table, `workers`)."""

from __future__ import annotations

from pathlib import Path

from orderguard.services.logistics import api
from orderguard.services.logistics import handlers as use_cases
from orderguard.services.logistics.handlers import CarrierRule, CompensationPolicy
from orderguard.services.logistics.rules import RULES
from orderguard.services.logistics.settings import LogisticsSettings
from orderguard.shared.contract.ingest import build_ingest_router
from orderguard.shared.events.carriers import CarrierScan
from orderguard.shared.retention import Retention, retention_job
from orderguard.shared.runtime import Runtime, ServiceDefinition
from orderguard.shared.scheduler import ScheduledJob
from orderguard.shared.settings import Settings
from orderguard.shared.wiring import Detectors, UseCaseConsumer, Workers


def workers(runtime: Runtime) -> Workers:
    settings = runtime.settings
    topics = runtime.topics
    own = settings.section(LogisticsSettings)
    carriers = CarrierRule(own.default_carrier, own.carrier_by_warehouse)
    compensation = CompensationPolicy(
        by_reason=own.delay_compensation,
        overdue_after_s=own.overdue_compensation_after_s,
        stalled_after_s=own.stall_compensation_after_s,
    )
    return Workers(
        consumers=[
            # One shipment per paid order (its id derives from the order's).
            UseCaseConsumer(
                "logistics.shipments",
                [topics.orders],
                frozenset({"order.paid.v1"}),
                lambda uow, events: use_cases.create_shipments(uow, events, topics, carriers),
            ),
            # Scans from carriers or our webhook, once per carrier and scan id.
            UseCaseConsumer(
                "logistics.scans",
                [topics.carrier_scans],
                frozenset({"carrier.scan.v1"}),
                lambda uow, events: use_cases.apply_scans(uow, events, topics),
            ),
        ],
        detectors=Detectors(RULES, [topics.logistics]),
        jobs=[
            ScheduledJob(
                "logistics.delay-compensation",
                lambda uow, limit: use_cases.compensate_delays(uow, topics, compensation, limit),
            ),
            retention_job(webhook_receipts_retention(settings), settings),
        ],
    )


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
    routers=lambda runtime: [api.router, build_ingest_router(runtime, [CarrierScan])],
    workers=workers,
)
