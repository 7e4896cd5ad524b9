"""A rule whose keys span partitions (order.duplicate: per customer, over orders keyed by order
id) run by two workers at once, on the real database: each batch reads the key's state fresh
and locked, so one worker sees what the other stored and neither overwrites the other."""

from __future__ import annotations

import asyncio

from orderflow import placed_event as placed

from orderguard.services.order.rules import DuplicateOrder
from orderguard.shared.db import apply_migrations, create_pool
from orderguard.shared.detection.config import RuleConfig
from orderguard.shared.detection.consumer import DetectorConsumer
from orderguard.shared.detection.deadlines import PartitionClocks
from orderguard.shared.settings import Settings
from orderguard.shared.uow import UnitOfWork

SCHEMA = "sharedkeytest"


def worker(settings: Settings) -> DetectorConsumer:
    return DetectorConsumer(
        DuplicateOrder(RuleConfig.of(DuplicateOrder)),
        topics=["orders.events"],
        anomalies_topic="anomalies.detected",
        service="test",
        clocks=PartitionClocks.from_settings(settings),
    )


async def test_two_workers_share_a_customer_s_state(settings: Settings) -> None:
    await apply_migrations(settings.database_url, SCHEMA, None)
    pool = await create_pool(settings.database_url, SCHEMA)
    one, two = worker(settings), worker(settings)

    async def handle(handler: DetectorConsumer, *events: object) -> int:
        async with UnitOfWork(pool, SCHEMA) as uow:
            await handler.handle(uow, list(events))  # type: ignore[arg-type]
            await uow.commit()
            return len(uow.outbox)

    # Worker one caches the customer's state with o1; worker two stores o2 (another basket);
    # o3 repeats o2 on worker one: it must see o2, which its cache never held.
    assert await handle(one, placed("o1", 0)) == 0
    assert await handle(two, placed("o2", 10, lines=(("SKU-9", 1),))) == 0
    assert await handle(one, placed("o3", 20, lines=(("SKU-9", 1),))) == 1

    # Twins of a new customer on both workers at once: one of them finds the other.
    raised = await asyncio.gather(
        handle(one, placed("n1", 0, customer="c-new")),
        handle(two, placed("n2", 5, customer="c-new")),
    )
    assert sorted(raised) == [0, 1]
    state = await pool.fetchval(
        "SELECT state FROM detector_state WHERE rule = 'order.duplicate' AND key = 'c-new'"
    )
    assert sorted(seen["order_id"] for seen in state["orders"]) == ["n1", "n2"]
    await pool.close()
