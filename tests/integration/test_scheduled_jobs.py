"""Scheduled jobs on the real database: two workers running the same job at once handle each
due item exactly once, full batches run again at once, and a failing run is retried."""

from __future__ import annotations

import asyncio

from testkit import wait_until

from orderguard.shared.db import create_pool
from orderguard.shared.scheduler import ScheduledJob, run_job
from orderguard.shared.settings import Settings
from orderguard.shared.uow import UnitOfWork

SCHEMA = "jobtest"


async def test_two_workers_handle_each_due_item_once(settings: Settings) -> None:
    pool = await create_pool(settings.database_url, "public")
    await pool.execute(f"CREATE SCHEMA {SCHEMA}")
    await pool.close()
    pool = await create_pool(settings.database_url, SCHEMA)
    await pool.execute(
        "CREATE TABLE due (id int PRIMARY KEY, handled int NOT NULL DEFAULT 0, done bool NOT NULL DEFAULT false)"
    )
    await pool.execute("INSERT INTO due (id) SELECT generate_series(1, 1000)")
    failures = {"left": 1}

    async def time_out_due(uow: UnitOfWork, limit: int) -> int:
        if failures["left"]:
            failures["left"] -= 1
            await uow.conn.execute("SELECT 1/0")  # a failed run changes nothing and is retried
        rows = await uow.conn.fetch(
            "SELECT id FROM due WHERE NOT done ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", limit
        )
        await uow.conn.execute(
            "UPDATE due SET handled = handled + 1, done = true WHERE id = ANY($1::int[])",
            [row["id"] for row in rows],
        )
        return len(rows)

    job = ScheduledJob("test.timeouts", time_out_due, batch_max=50)
    stop = asyncio.Event()
    workers = [
        asyncio.create_task(run_job(job, pool, SCHEMA, stop, every_s=0.05)) for _ in range(2)
    ]
    try:
        await wait_until(
            lambda: pool.fetchval("SELECT count(*) = 1000 FROM due WHERE done"),
            what="every due item handled",
        )
    finally:
        stop.set()
        await asyncio.gather(*workers)
    assert await pool.fetchval("SELECT max(handled) FROM due") == 1
    assert failures["left"] == 0
    await pool.close()
