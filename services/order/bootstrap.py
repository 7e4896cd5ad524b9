"""Wires the order service (with its recycle bin): its APIs and what its worker runs (one
table, `workers`)."""

from __future__ import annotations

from pathlib import Path

from orderguard.services.order import api
from orderguard.services.order import handlers as use_cases
from orderguard.services.order.config import order_config
from orderguard.services.order.recycle_bin import api as recycle_bin_api
from orderguard.services.order.recycle_bin import handlers as recycle_bin
from orderguard.services.order.recycle_bin.domain import anomaly_categories
from orderguard.services.order.rules import (
    RULES,
    PaymentCapturedAfterCancel,
    ShipmentDispatchedWhileHeld,
)
from orderguard.services.order.settings import OrderSettings
from orderguard.shared.actor import CONSUMER, Actor
from orderguard.shared.contract.ingest import build_ingest_router
from orderguard.shared.detection.config import in_force
from orderguard.shared.events.payments import PaymentAmountMismatch, PaymentFailed, PaymentSucceeded
from orderguard.shared.runtime import Runtime, ServiceDefinition
from orderguard.shared.scheduler import ScheduledJob
from orderguard.shared.wiring import Detectors, UseCaseConsumer, Workers


def workers(runtime: Runtime) -> Workers:
    own = runtime.settings.section(OrderSettings)
    topics = runtime.topics
    config = order_config(runtime)
    # An unknown category in the setting stops start-up here, with a clear message.
    bin_categories = anomaly_categories(own.recycle_bin_anomaly_rules)
    detectors = in_force(runtime)
    captured_after_cancel = PaymentCapturedAfterCancel(
        detectors.rule(PaymentCapturedAfterCancel.name)
    )
    dispatched_while_held = ShipmentDispatchedWhileHeld(
        detectors.rule(ShipmentDispatchedWhileHeld.name)
    )

    def by(group: str) -> Actor:
        """What a consumer's timeline entries name as their actor."""
        return Actor(CONSUMER, group)

    return Workers(
        consumers=[
            # What inventory did for an order goes on its timeline; a failed reservation holds
            # the order as out of stock and tells the customer what they can do.
            UseCaseConsumer(
                "order.inventory-outcomes",
                [topics.inventory],
                frozenset(
                    {
                        "inventory.reserved.v1",
                        "inventory.reservation_failed.v1",
                        "inventory.released.v1",
                    }
                ),
                lambda uow, events: use_cases.record_inventory_outcomes(
                    uow, config, events, by("order.inventory-outcomes")
                ),
            ),
            # Payment outcomes: paid, payment failed (a retry may still pay), held on a mismatch.
            UseCaseConsumer(
                "order.payments",
                [topics.name("payments.events")],
                frozenset(
                    {"payment.succeeded.v1", "payment.failed.v1", "payment.amount_mismatch.v1"}
                ),
                lambda uow, events: use_cases.apply_payment_events(
                    uow, config, captured_after_cancel, events, by("order.payments")
                ),
            ),
            # Carriers' facts: dispatched -> shipped, delivered -> delivered.
            UseCaseConsumer(
                "order.shipments",
                [topics.logistics],
                frozenset({"shipment.dispatched.v1", "shipment.delivered.v1"}),
                lambda uow, events: use_cases.apply_shipment_events(
                    uow, config, dispatched_while_held, events, by("order.shipments")
                ),
            ),
            UseCaseConsumer(
                "order.recycle-bin.aftersales",
                [topics.aftersales],
                frozenset({"refund.issued.v1", "case.opened.v1", "case.closed.v1"}),
                lambda uow, events: recycle_bin.move_on_aftersales_events(
                    uow, topics.orders, by("order.recycle-bin.aftersales"), events
                ),
            ),
            UseCaseConsumer(
                "order.recycle-bin.anomalies",
                [topics.anomalies],
                frozenset({"anomaly.detected.v1"}),
                lambda uow, events: recycle_bin.move_on_anomalies(
                    uow, topics.orders, bin_categories, events
                ),
            ),
        ],
        detectors=Detectors(RULES, [topics.orders]),
        jobs=[
            ScheduledJob(
                "order.payment-timeout",
                lambda uow, limit: use_cases.cancel_unpaid_orders(uow, config, limit),
            ),
            ScheduledJob(
                "order.auto-release",
                lambda uow, limit: use_cases.release_due_holds(uow, config, limit),
            ),
            ScheduledJob(
                "order.auto-complete",
                lambda uow, limit: use_cases.complete_delivered_orders(uow, config, limit),
            ),
            ScheduledJob(
                "order.recycle-bin.archive-quiet",
                lambda uow, limit: recycle_bin.archive_quiet_entries(
                    uow, topics.orders, own.recycle_bin_quiet_period_s, limit
                ),
            ),
            ScheduledJob(
                "order.recycle-bin.purge",
                lambda uow, limit: recycle_bin.purge_past_retention(
                    uow, topics.orders, own.recycle_bin_retention_s, limit
                ),
                batch_max=200,
            ),
            ScheduledJob("order.recycle-bin.measure", lambda uow, limit: recycle_bin.measure(uow)),
        ],
    )


DEFINITION = ServiceDefinition(
    name="order",
    migrations=Path(__file__).parent / "migrations",
    routers=lambda runtime: [
        api.router,
        recycle_bin_api.router,
        # Payment providers that cannot speak Kafka POST their facts here (onto payments.events).
        build_ingest_router(runtime, [PaymentSucceeded, PaymentFailed, PaymentAmountMismatch]),
    ],
    workers=workers,
)
