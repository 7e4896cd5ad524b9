"""Wires the order service: its API, its consumers, its detectors and its scheduled jobs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from orderguard.services.order import handlers as use_cases
from orderguard.services.order.api import build_router
from orderguard.services.order.consumers import (
    ApplyPayments,
    ApplyShipments,
    RecordInventoryOutcomes,
)
from orderguard.services.order.handlers import OrderConfig
from orderguard.services.order.recycle_bin import bootstrap as recycle_bin
from orderguard.services.order.rules import DuplicateOrder, PaymentFailureBurst
from orderguard.shared.contract.ingest import build_ingest_router
from orderguard.shared.detection.consumer import detector_handlers
from orderguard.shared.events.payments import PaymentAmountMismatch, PaymentFailed, PaymentSucceeded
from orderguard.shared.runtime import Runtime, ServiceDefinition
from orderguard.shared.scheduler import ScheduledJob
from orderguard.shared.uow import UnitOfWork


def order_config(runtime: Runtime) -> OrderConfig:
    settings = runtime.settings
    return OrderConfig(
        orders_topic=runtime.topics.orders,
        notifications_topic=runtime.topics.notification_requests,
        anomalies_topic=runtime.topics.anomalies,
        payment_deadline=timedelta(seconds=settings.order_payment_deadline_s),
        promise_days=settings.order_delivery_promise_days,
        express_promise_days=settings.order_express_delivery_promise_days,
        complete_after=timedelta(days=settings.order_complete_after_days),
    )


def handlers(runtime: Runtime) -> list[object]:
    topics = runtime.topics
    config = order_config(runtime)
    found: list[object] = [
        RecordInventoryOutcomes(topics.inventory, config),
        ApplyPayments(topics.name("payments.events"), config),
        ApplyShipments(topics.logistics, config),
        *recycle_bin.handlers(runtime),
    ]
    return [
        *found,
        *detector_handlers(runtime, (DuplicateOrder, PaymentFailureBurst), [topics.orders]),
    ]


def jobs(runtime: Runtime) -> list[ScheduledJob]:
    config = order_config(runtime)

    def job(name: str, run: use_cases.JobRun) -> ScheduledJob:
        async def run_with_config(uow: UnitOfWork, limit: int) -> int:
            return await run(uow, config, limit)

        return ScheduledJob(name, run_with_config)

    return [
        job("order.payment_timeout", use_cases.cancel_unpaid_orders),
        job("order.auto_release", use_cases.release_due_holds),
        job("order.auto_complete", use_cases.complete_delivered_orders),
        *recycle_bin.jobs(runtime),
    ]


DEFINITION = ServiceDefinition(
    name="order",
    migrations=Path(__file__).parent / "migrations",
    routers=lambda runtime: [
        build_router(runtime, order_config(runtime)),
        recycle_bin.build_router(runtime),
        # Payment providers that cannot speak Kafka POST their facts here (onto payments.events).
        build_ingest_router(runtime, [PaymentSucceeded, PaymentFailed, PaymentAmountMismatch]),
    ],
    handlers=handlers,  # type: ignore[arg-type]
    jobs=jobs,
)
