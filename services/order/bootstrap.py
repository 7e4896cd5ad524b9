"""Wires the order service: its API and its consumers."""

from __future__ import annotations

from pathlib import Path

from orderguard.services.order.api import build_router
from orderguard.services.order.consumers import RecordInventoryOutcomes
from orderguard.services.order.recycle_bin import bootstrap as recycle_bin
from orderguard.shared.engine import BatchHandler
from orderguard.shared.runtime import Runtime, ServiceDefinition


def handlers(runtime: Runtime) -> list[BatchHandler]:
    return [RecordInventoryOutcomes(runtime.topics.inventory), *recycle_bin.handlers(runtime)]


DEFINITION = ServiceDefinition(
    name="order",
    migrations=Path(__file__).parent / "migrations",
    routers=lambda runtime: [build_router(runtime), recycle_bin.build_router(runtime)],
    handlers=handlers,
    jobs=recycle_bin.jobs,
)
