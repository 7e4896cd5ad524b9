"""Wires the inventory service: its API and what its worker runs (one table, `workers`)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from orderguard.services.inventory import api
from orderguard.services.inventory import handlers as use_cases
from orderguard.services.inventory.rules import RULES, UnknownReservation
from orderguard.shared.detection.config import in_force
from orderguard.shared.runtime import Runtime, ServiceDefinition
from orderguard.shared.wiring import Detectors, UseCaseConsumer, Workers


def workers(runtime: Runtime) -> Workers:
    topics = runtime.topics
    unknown_reservation = UnknownReservation(in_force(runtime).rule(UnknownReservation.name))
    return Workers(
        consumers=[
            UseCaseConsumer(
                "inventory.reservations",
                [topics.orders],
                frozenset(
                    {
                        "order.placed.v1",
                        "order.reservation_requested.v1",
                        "order.cancelled.v1",
                        "order.shipped.v1",
                    }
                ),
                lambda uow, events: use_cases.reserve_stock_for_orders(
                    uow, topics, unknown_reservation, events
                ),
            ),
        ],
        detectors=Detectors(RULES, [topics.inventory]),
    )


def routers(runtime: Runtime) -> list[APIRouter]:
    in_force(runtime)  # an invalid detectors file stops the API's start, not its first request
    return [api.router]


DEFINITION = ServiceDefinition(
    name="inventory",
    migrations=Path(__file__).parent / "migrations",
    routers=routers,
    workers=workers,
)
