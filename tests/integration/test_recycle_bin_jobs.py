"""The recycle bin's purge job on the real database: two workers at once purge each archived
order exactly once (FOR UPDATE SKIP LOCKED), one purge record, one timeline entry, one event."""

from __future__ import annotations

import asyncio
from typing import Any

from testkit import ORDER_BODY, tuned, wait_until

from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared.scheduler import run_job
from orderguard.shared.settings import Settings

ORDERS = 30


async def test_two_workers_purge_each_archived_order_once(
    settings: Settings, start_service: Any
) -> None:
    quick = tuned(settings, order={"recycle_bin_retention_s": 0.01})
    # The API role only: the test runs the jobs itself.
    order = await start_service(ORDER, roles=frozenset({"api"}), settings_=quick)
    ids = []
    for _ in range(ORDERS):
        response = await order.client.post("/orders", json=ORDER_BODY)
        order_id = response.json()["order_id"]
        moved = await order.client.post(
            f"/orders/{order_id}/recycle-bin", json={"category": "other", "reason": "test"}
        )
        assert moved.status_code == 201
        ids.append(order_id)
    pool = order.runtime.pool
    await pool.execute(
        "UPDATE recycle_bin_entries SET state = 'archived', archived_at = now() - interval '1 hour'"
    )

    [purge] = [
        job for job in ORDER.workers(order.runtime).jobs if job.name == "order.recycle-bin.purge"
    ]
    purge = type(purge)(purge.name, purge.run, batch_max=4)  # small batches: the workers interleave
    stop = asyncio.Event()
    workers = [
        asyncio.create_task(run_job(purge, pool, order.runtime.schema, stop, every_s=0.05))
        for _ in range(2)
    ]
    try:
        await wait_until(
            lambda: pool.fetchval(
                "SELECT count(*) = $1 FROM recycle_bin_entries WHERE state = 'purged'", ORDERS
            ),
            what="every archived order purged",
        )
    finally:
        stop.set()
        await asyncio.gather(*workers)

    assert await pool.fetchval("SELECT count(*) FROM order_purges") == ORDERS
    assert await pool.fetchval("SELECT count(*) FROM orders WHERE phone <> ''") == 0
    per_order = await pool.fetch(
        "SELECT order_id, count(*) AS n FROM order_timeline WHERE what = 'personal_data_purged'"
        " GROUP BY order_id"
    )
    assert sorted(row["order_id"] for row in per_order) == sorted(ids)
    assert {row["n"] for row in per_order} == {1}
    assert (
        await pool.fetchval(
            'SELECT count(*) FROM outbox WHERE headers @> \'[["ce_type", "order.purged.v1"]]\''
        )
        == ORDERS
    )
