"""Retention: every table that grows with traffic keeps what it needs and no more.

A `Retention` names a table, the column that dates a row, how long rows are kept and which rows
may go at all (a delivery still being retried may not). Its job (a `ScheduledJob`, so it runs
like every other job) deletes at most `batch_max` expired rows per transaction, picked with
`FOR UPDATE SKIP LOCKED` so it never waits on nor blocks a row in use, and runs again at once
while it finds full batches. After each pass it sets the table's size and its oldest row's age
as metrics. The tables and their defaults are listed in docs/operations.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orderguard.shared import metrics
from orderguard.shared.db import Connection
from orderguard.shared.scheduler import ScheduledJob
from orderguard.shared.settings import Settings
from orderguard.shared.uow import UnitOfWork

# Counted exactly below this many rows (by the planner's estimate), estimated above.
EXACT_COUNT_BELOW = 100_000


@dataclass(frozen=True)
class Retention:
    """Rows of `table` whose `dated_by` is older than `keep_s` and that match `where` go.

    `children`: (table, column) pairs referencing the row's `key`, deleted with it."""

    name: str
    table: str
    dated_by: str
    keep_s: float
    where: str = "TRUE"
    key: str = "ctid"
    children: Sequence[tuple[str, str]] = ()


async def delete_expired(conn: Connection, retention: Retention, limit: int) -> int:
    """Delete up to `limit` expired rows (and their children) in the caller's transaction."""
    keys = [
        row[0]
        for row in await conn.fetch(
            f"SELECT {retention.key} FROM {retention.table}"
            f" WHERE {retention.dated_by} < now() - make_interval(secs => $1::float8)"
            f" AND ({retention.where}) LIMIT $2 FOR UPDATE SKIP LOCKED",
            retention.keep_s,
            limit,
        )
    ]
    if not keys:
        return 0
    key_type = "tid" if retention.key == "ctid" else None
    for child, column in retention.children:
        await conn.execute(f"DELETE FROM {child} WHERE {column} = ANY($1)", keys)
    cast = f"::{key_type}[]" if key_type else ""
    status = await conn.execute(
        f"DELETE FROM {retention.table} WHERE {retention.key} = ANY($1{cast})", keys
    )
    return int(status.rsplit(" ", 1)[1])


async def measure(conn: Connection, schema: str, retention: Retention) -> None:
    estimate = await conn.fetchval(
        "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass($1)", retention.table
    )
    rows = (
        estimate
        if estimate is not None and estimate >= EXACT_COUNT_BELOW
        else await conn.fetchval(f"SELECT count(*) FROM {retention.table}")
    )
    oldest = await conn.fetchval(
        f"SELECT COALESCE(EXTRACT(EPOCH FROM now() - min({retention.dated_by})), 0)"
        f" FROM {retention.table}"
    )
    metrics.TABLE_ROWS.labels(schema, retention.table).set(rows)
    metrics.TABLE_OLDEST_ROW_AGE.labels(schema, retention.table).set(float(max(oldest or 0, 0)))


def retention_job(retention: Retention, settings: Settings) -> ScheduledJob:
    async def run(uow: UnitOfWork, limit: int) -> int:
        deleted = await delete_expired(uow.conn, retention, limit)
        if deleted < limit:  # measured once a pass has caught up, not after every batch
            await measure(uow.conn, uow.schema, retention)
        return deleted

    return ScheduledJob(
        f"retention.{retention.name}",
        run,
        every_s=settings.retention.interval_s,
        batch_max=settings.retention.batch_max,
    )


def engine_retentions(settings: Settings) -> list[Retention]:
    """The engine's tables, in every service's schema."""
    return [
        # Event ids already applied: a producer's duplicate older than this is applied again.
        Retention("applied_events", "applied_events", "applied_at", settings.dedup_retention_s),
        # A retried HTTP write within this window gets the first answer again.
        Retention(
            "idempotency_keys",
            "idempotency_keys",
            "created_at",
            settings.retention.idempotency_keys_s,
        ),
    ]
