"""Work that comes due with wall time, not with an event: a payment deadline that passes, a
hold's auto-release, a purge after retention, a work item's escalation, a delivery retry.

A `ScheduledJob` handles up to `batch_max` due items in one transaction (state change and
the events it causes, through the outbox); a job that measures handles none. Jobs are declared
in each service's `bootstrap.py` table, named `<service>.<what-it-does>`. They pick their rows
with `FOR UPDATE SKIP LOCKED`, so every worker replica can run them at once without doing
anything twice. Anomalies that come from silence (no scan for N hours) are not jobs: they are
`TimedRule` deadlines on the detector's event-time clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from orderguard.shared import metrics
from orderguard.shared.logging import get_logger
from orderguard.shared.stopping import stopped_within
from orderguard.shared.uow import UnitOfWork

log = get_logger(__name__)


@dataclass(frozen=True)
class ScheduledJob:
    """`run(uow, limit)` handles at most `limit` due items and returns how many it handled
    (None: it handles no items, e.g. it sets a gauge)."""

    name: str
    run: Callable[[UnitOfWork, int], Awaitable[int | None]]
    every_s: float | None = None  # None: the deployment's `job_interval_s`
    batch_max: int = 500


async def run_job(
    job: ScheduledJob,
    pool: asyncpg.Pool,
    schema: str,
    stop: asyncio.Event,
    every_s: float,
) -> None:
    """Run `job` until `stop`: at once again while it finds a full batch, else every `every_s`."""
    while not stop.is_set():
        handled = 0
        try:
            async with UnitOfWork(pool, schema) as uow:
                handled = await job.run(uow, job.batch_max) or 0
                await uow.commit()
            metrics.JOB_RUNS.labels(job=job.name, outcome="ok").inc()
            metrics.JOB_ITEMS.labels(job=job.name).inc(handled)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The database is away or a row raced us: the next run sees the same due items.
            metrics.JOB_RUNS.labels(job=job.name, outcome="error").inc()
            log.warning("scheduled job failed; retrying", job=job.name, error=str(exc))
        if handled >= job.batch_max:
            continue
        await stopped_within(stop, job.every_s or every_s)
