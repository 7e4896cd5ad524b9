"""PostgreSQL adapter for work items, their anomalies, links, comments and timelines."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from orderguard.services.notifier.work_items.domain import Entry, State, WorkItem
from orderguard.shared.db import Connection

_ITEM_COLUMNS = (
    "id, team, group_key, state, severity, initial_severity, tier, title, rules, labels,"
    " anomaly_count, open_anomalies, created_at, claim_due_at, resolve_due_at, claimed_by,"
    " claimed_at, closed_at, closed_by, close_reason, cleared_at, reopened,"
    " next_escalation_at, next_reminder_at"
)


def _item(row: asyncpg.Record) -> WorkItem:
    return WorkItem(
        id=str(row["id"]),
        team=row["team"],
        group_key=row["group_key"],
        state=State(row["state"]),
        severity=row["severity"],
        initial_severity=row["initial_severity"],
        tier=row["tier"],
        title=row["title"],
        rules=tuple(row["rules"]),
        labels=row["labels"],
        anomaly_count=row["anomaly_count"],
        open_anomalies=row["open_anomalies"],
        created_at=row["created_at"],
        claim_due_at=row["claim_due_at"],
        resolve_due_at=row["resolve_due_at"],
        claimed_by=row["claimed_by"],
        claimed_at=row["claimed_at"],
        closed_at=row["closed_at"],
        closed_by=row["closed_by"],
        close_reason=row["close_reason"],
        cleared_at=row["cleared_at"],
        reopened=row["reopened"],
        next_escalation_at=row["next_escalation_at"],
        next_reminder_at=row["next_reminder_at"],
    )


async def lock_groups(conn: Connection, groups: Sequence[tuple[str, str]]) -> None:
    """Serialise work on each (team, group) until commit: one item per group, whoever races."""
    keys = sorted({f"{team}\x1f{group}" for team, group in groups})
    if keys:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 0))"
            " FROM unnest($1::text[]) AS k ORDER BY k",  # one lock order for everyone
            keys,
        )


async def latest_of_group(conn: Connection, team: str, group_key: str) -> WorkItem | None:
    row = await conn.fetchrow(
        f"SELECT {_ITEM_COLUMNS} FROM work_items WHERE team = $1 AND group_key = $2"
        " ORDER BY created_at DESC LIMIT 1",
        team,
        group_key,
    )
    return _item(row) if row else None


async def get(conn: Connection, item_id: str, *, for_update: bool = False) -> WorkItem | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {_ITEM_COLUMNS} FROM work_items WHERE id = $1{lock}", uuid.UUID(item_id)
    )
    return _item(row) if row else None


async def save(conn: Connection, item: WorkItem) -> None:
    await conn.execute(
        "INSERT INTO work_items (id, team, group_key, state, severity, initial_severity, priority,"
        " tier, title, rules, labels, anomaly_count, open_anomalies, created_at, claim_due_at,"
        " resolve_due_at, due_at, claimed_by, claimed_at, closed_at, closed_by, close_reason,"
        " cleared_at, reopened, next_escalation_at, next_reminder_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,"
        " $18, $19, $20, $21, $22, $23, $24, $25, $26, now())"
        " ON CONFLICT (id) DO UPDATE SET state = $4, severity = $5, priority = $7, tier = $8,"
        " rules = $10, anomaly_count = $12, open_anomalies = $13, claim_due_at = $15,"
        " resolve_due_at = $16, due_at = $17, claimed_by = $18, claimed_at = $19,"
        " closed_at = $20, closed_by = $21, close_reason = $22, cleared_at = $23,"
        " reopened = $24, next_escalation_at = $25, next_reminder_at = $26, updated_at = now()",
        uuid.UUID(item.id),
        item.team,
        item.group_key,
        str(item.state),
        item.severity,
        item.initial_severity,
        item.priority,
        item.tier,
        item.title,
        list(item.rules),
        dict(item.labels),
        item.anomaly_count,
        item.open_anomalies,
        item.created_at,
        item.claim_due_at,
        item.resolve_due_at,
        item.due_at,
        item.claimed_by,
        item.claimed_at,
        item.closed_at,
        item.closed_by,
        item.close_reason,
        item.cleared_at,
        item.reopened,
        item.next_escalation_at,
        item.next_reminder_at,
    )


async def add_timeline(conn: Connection, item_id: str, entries: Sequence[Entry]) -> None:
    if entries:
        await conn.executemany(
            "INSERT INTO work_item_timeline (work_item_id, at, what, actor, actor_name, details)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            [
                (uuid.UUID(item_id), e.at, e.what, e.actor, e.actor_name, dict(e.details))
                for e in entries
            ],
        )


async def add_links(conn: Connection, item_id: str, links: Sequence[tuple[str, str]]) -> None:
    if links:
        await conn.executemany(
            "INSERT INTO work_item_links (work_item_id, kind, ref) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING",
            [(uuid.UUID(item_id), kind, ref) for kind, ref in links],
        )


@dataclass(frozen=True)
class ItemAnomaly:
    work_item_id: str
    fingerprint: str
    event_time: datetime
    cleared_at: datetime | None


async def anomaly_of(conn: Connection, item_id: str, fingerprint: str) -> ItemAnomaly | None:
    row = await conn.fetchrow(
        "SELECT work_item_id, fingerprint, event_time, cleared_at FROM work_item_anomalies"
        " WHERE work_item_id = $1 AND fingerprint = $2",
        uuid.UUID(item_id),
        fingerprint,
    )
    return (
        ItemAnomaly(str(row[0]), row[1], row[2], row[3]) if row else None
    )


async def groups_firing(conn: Connection, fingerprint: str) -> list[tuple[str, str]]:
    """(team, group) of the items where a fingerprint still fires: to lock before changing them."""
    rows = await conn.fetch(
        "SELECT DISTINCT i.team, i.group_key FROM work_item_anomalies a"
        " JOIN work_items i ON i.id = a.work_item_id"
        " WHERE a.fingerprint = $1 AND a.cleared_at IS NULL",
        fingerprint,
    )
    return [(row["team"], row["group_key"]) for row in rows]


async def firing_anomalies(conn: Connection, fingerprint: str) -> list[ItemAnomaly]:
    """Where a fingerprint still fires (one item per team it was routed to), locked."""
    rows = await conn.fetch(
        "SELECT work_item_id, fingerprint, event_time, cleared_at FROM work_item_anomalies"
        " WHERE fingerprint = $1 AND cleared_at IS NULL ORDER BY work_item_id FOR UPDATE",
        fingerprint,
    )
    return [ItemAnomaly(str(r[0]), r[1], r[2], r[3]) for r in rows]


async def add_anomaly(
    conn: Connection,
    item_id: str,
    *,
    fingerprint: str,
    team: str,
    rule: str,
    severity: str,
    summary: str,
    labels: dict[str, str],
    event_time: datetime,
    detected_at: datetime,
    cleared_at: datetime | None,
) -> None:
    await conn.execute(
        "INSERT INTO work_item_anomalies (work_item_id, fingerprint, team, rule, severity,"
        " summary, labels, event_time, detected_at, cleared_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        uuid.UUID(item_id),
        fingerprint,
        team,
        rule,
        severity,
        summary,
        labels,
        event_time,
        detected_at,
        cleared_at,
    )


async def mark_refired(
    conn: Connection, item_id: str, fingerprint: str, event_time: datetime
) -> None:
    await conn.execute(
        "UPDATE work_item_anomalies SET cleared_at = NULL, fired = fired + 1, event_time = $3"
        " WHERE work_item_id = $1 AND fingerprint = $2",
        uuid.UUID(item_id),
        fingerprint,
        event_time,
    )


async def mark_cleared(conn: Connection, item_id: str, fingerprint: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE work_item_anomalies SET cleared_at = $3 WHERE work_item_id = $1 AND fingerprint = $2",
        uuid.UUID(item_id),
        fingerprint,
        at,
    )


async def record_clearance(conn: Connection, fingerprint: str, event_time: datetime) -> None:
    await conn.execute(
        "INSERT INTO anomaly_clearances (fingerprint, event_time) VALUES ($1, $2)"
        " ON CONFLICT (fingerprint) DO UPDATE SET event_time = greatest("
        "   anomaly_clearances.event_time, EXCLUDED.event_time), received_at = now()",
        fingerprint,
        event_time,
    )


async def clearance_of(conn: Connection, fingerprint: str) -> datetime | None:
    value: datetime | None = await conn.fetchval(
        "SELECT event_time FROM anomaly_clearances WHERE fingerprint = $1", fingerprint
    )
    return value


async def add_comment(
    conn: Connection, item_id: str, author: str, body: str, at: datetime
) -> dict[str, Any]:
    row = await conn.fetchrow(
        "INSERT INTO work_item_comments (id, work_item_id, author, body, created_at)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id, author, body, created_at",
        uuid.uuid4(),
        uuid.UUID(item_id),
        author,
        body,
        at,
    )
    return dict(row)  # type: ignore[arg-type]


async def due_for_escalation(conn: Connection, now: datetime, limit: int) -> list[WorkItem]:
    """Items past their due time, locked; rows another worker holds are skipped, not waited on."""
    rows = await conn.fetch(
        f"SELECT {_ITEM_COLUMNS} FROM work_items WHERE next_escalation_at <= $1"
        " ORDER BY next_escalation_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    return [_item(row) for row in rows]


async def due_for_reminder(conn: Connection, now: datetime, limit: int) -> list[WorkItem]:
    rows = await conn.fetch(
        f"SELECT {_ITEM_COLUMNS} FROM work_items WHERE next_reminder_at <= $1"
        " ORDER BY next_reminder_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    return [_item(row) for row in rows]


async def open_counts(conn: Connection) -> list[tuple[str, str, int]]:
    """(team, severity, items) of live items: an index-only count by the queue index."""
    rows = await conn.fetch(
        "SELECT team, severity, count(*) AS n FROM work_items"
        " WHERE state IN ('open', 'claimed') GROUP BY team, severity"
    )
    return [(r["team"], r["severity"], r["n"]) for r in rows]


# ---- queue views ----------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueFilter:
    team: str | None = None
    states: tuple[str, ...] = ()
    severity: str | None = None
    rule: str | None = None
    created_before: datetime | None = None  # min age
    created_after: datetime | None = None  # max age


async def find(
    conn: Connection, where: QueueFilter, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Items by priority, then due time (no due time last), then age; and how many match."""
    args = (
        where.team,
        list(where.states) or None,
        where.severity,
        where.rule,
        where.created_before,
        where.created_after,
    )
    condition = (
        " WHERE ($1::text IS NULL OR team = $1) AND ($2::text[] IS NULL OR state = ANY($2))"
        " AND ($3::text IS NULL OR severity = $3) AND ($4::text IS NULL OR $4 = ANY(rules))"
        " AND ($5::timestamptz IS NULL OR created_at <= $5)"
        " AND ($6::timestamptz IS NULL OR created_at >= $6)"
    )
    rows = await conn.fetch(
        f"SELECT {_ITEM_COLUMNS}, due_at FROM work_items{condition}"
        " ORDER BY priority, due_at NULLS LAST, created_at, id LIMIT $7 OFFSET $8",
        *args,
        limit,
        offset,
    )
    total = await conn.fetchval(f"SELECT count(*) FROM work_items{condition}", *args)
    return [dict(row) for row in rows], int(total)


async def detail(conn: Connection, item_id: str) -> dict[str, Any] | None:
    key = uuid.UUID(item_id)
    row = await conn.fetchrow(f"SELECT {_ITEM_COLUMNS}, due_at FROM work_items WHERE id = $1", key)
    if row is None:
        return None
    found = dict(row)
    found["anomalies"] = [
        dict(r)
        for r in await conn.fetch(
            "SELECT fingerprint, rule, severity, summary, labels, event_time, detected_at, fired,"
            " cleared_at FROM work_item_anomalies WHERE work_item_id = $1 ORDER BY detected_at",
            key,
        )
    ]
    found["links"] = [
        dict(r)
        for r in await conn.fetch(
            "SELECT kind, ref FROM work_item_links WHERE work_item_id = $1 ORDER BY kind, ref", key
        )
    ]
    found["comments"] = [
        dict(r)
        for r in await conn.fetch(
            "SELECT id, author, body, created_at FROM work_item_comments"
            " WHERE work_item_id = $1 ORDER BY created_at, id",
            key,
        )
    ]
    found["timeline"] = [
        dict(r)
        for r in await conn.fetch(
            "SELECT at, what, actor, actor_name, details FROM work_item_timeline"
            " WHERE work_item_id = $1 ORDER BY id",
            key,
        )
    ]
    return found
