"""Wires the aftersales service: its API and what its worker runs (one table, `workers`): its
copy of orders and deliveries, and its detectors (first-response SLA breaches, repeated
refunds)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from orderguard.services.aftersales import api
from orderguard.services.aftersales import handlers as use_cases
from orderguard.services.aftersales.rules import RULES
from orderguard.shared.detection.config import in_force
from orderguard.shared.runtime import Runtime, ServiceDefinition
from orderguard.shared.wiring import Detectors, UseCaseConsumer, Workers


def workers(runtime: Runtime) -> Workers:
    topics = runtime.topics
    return Workers(
        consumers=[
            # Our own copy of orders: lines, prices, what was paid, the customer and channel.
            # Payment facts keep their first value; the same fact resent upserts the same values.
            UseCaseConsumer(
                "aftersales.order-facts",
                [topics.orders],
                frozenset({"order.placed.v1", "order.paid.v1", "order.refund_requested.v1"}),
                # A paid order's refund request follows its payment on the same partition.
                lambda uow, events: use_cases.apply_order_facts(uow, topics, events),
            ),
            # When each parcel was delivered: the no-reason return window counts from it.
            # A parcel declared lost opens a case for the customer, once per shipment.
            UseCaseConsumer(
                "aftersales.deliveries",
                [topics.logistics],
                frozenset({"shipment.delivered.v1", "shipment.exception_reported.v1"}),
                lambda uow, events: use_cases.apply_shipment_facts(uow, topics, events),
            ),
        ],
        detectors=Detectors(RULES, [topics.aftersales]),
    )


def routers(runtime: Runtime) -> list[APIRouter]:
    # The API shows each case's first-response due time from the same SLA configuration; an
    # invalid detectors file stops the API's start, not its first request.
    in_force(runtime)
    return [api.router]


DEFINITION = ServiceDefinition(
    name="aftersales",
    migrations=Path(__file__).parent / "migrations",
    routers=routers,
    workers=workers,
)
