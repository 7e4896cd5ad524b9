"""PostgreSQL adapter for work items, their anomalies, links, comments and timelines."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from orderguard.services.notifier.work_items.book import ItemAnomaly
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


async def lock_groups(
    conn: Connection, groups: Sequence[tuple[str, str]], clearing: Sequence[str] = ()
) -> None:
    """Serialise work on each (team, group) until commit: one item per group, whoever races.
    The groups given, and those of the items where a `clearing` fingerprint still fires."""
    keys = sorted({f"{team}\x1f{group}" for team, group in groups})
    if keys or clearing:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM ("
            "  SELECT k FROM unnest($1::text[]) AS k"
            "  UNION SELECT i.team || chr(31) || i.group_key FROM work_item_anomalies a"
            "   JOIN work_items i ON i.id = a.work_item_id"
            "   WHERE a.fingerprint = ANY($2::text[]) AND a.cleared_at IS NULL"
            ") AS keys ORDER BY k",  # one lock order for everyone
            keys,
            list(clearing),
        )


async def lock_items_of(
    conn: Connection, groups: Sequence[tuple[str, str]], clearing: Sequence[str]
) -> list[WorkItem]:
    """The latest item of each (team, group), and the items where a `clearing` fingerprint
    still fires, locked."""
    rows = await conn.fetch(
        f"SELECT {_ITEM_COLUMNS} FROM work_items WHERE id IN ("
        "  (SELECT DISTINCT ON (team, group_key) id FROM work_items"
        "   WHERE (team, group_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
        "   ORDER BY team, group_key, created_at DESC)"
        "  UNION SELECT work_item_id FROM work_item_anomalies"
        "   WHERE fingerprint = ANY($3::text[]) AND cleared_at IS NULL)"
        " ORDER BY id FOR UPDATE",
        [team for team, _ in groups],
        [group for _, group in groups],
        list(clearing),
    )
    return [_item(row) for row in rows]


async def get(conn: Connection, item_id: str, *, for_update: bool = False) -> WorkItem | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {_ITEM_COLUMNS} FROM work_items WHERE id = $1{lock}", uuid.UUID(item_id)
    )
    return _item(row) if row else None


async def save(conn: Connection, items: Sequence[WorkItem]) -> None:
    """The items in one statement (distinct ids), new or changed."""
    if not items:
        return
    await conn.execute(
        "INSERT INTO work_items (id, team, group_key, state, severity, initial_severity, priority,"
        " tier, title, rules, labels, anomaly_count, open_anomalies, created_at, claim_due_at,"
        " resolve_due_at, due_at, claimed_by, claimed_at, closed_at, closed_by, close_reason,"
        " cleared_at, reopened, next_escalation_at, next_reminder_at, updated_at)"
        " SELECT id, team, group_key, state, severity, initial_severity, priority, tier, title,"
        " ARRAY(SELECT jsonb_array_elements_text(rules::jsonb)), labels, anomaly_count,"
        " open_anomalies, created_at, claim_due_at, resolve_due_at, due_at, claimed_by,"
        " claimed_at, closed_at, closed_by, close_reason, cleared_at, reopened,"
        " next_escalation_at, next_reminder_at, now()"
        " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
        " $7::smallint[], $8::smallint[], $9::text[], $10::text[], $11::jsonb[], $12::int[],"
        " $13::int[], $14::timestamptz[], $15::timestamptz[], $16::timestamptz[],"
        " $17::timestamptz[], $18::text[], $19::timestamptz[], $20::timestamptz[], $21::text[],"
        " $22::text[], $23::timestamptz[], $24::int[], $25::timestamptz[], $26::timestamptz[])"
        " AS i(id, team, group_key, state, severity, initial_severity, priority, tier, title,"
        " rules, labels, anomaly_count, open_anomalies, created_at, claim_due_at,"
        " resolve_due_at, due_at, claimed_by, claimed_at, closed_at, closed_by, close_reason,"
        " cleared_at, reopened, next_escalation_at, next_reminder_at)"
        " ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, severity = EXCLUDED.severity,"
        " priority = EXCLUDED.priority, tier = EXCLUDED.tier, rules = EXCLUDED.rules,"
        " anomaly_count = EXCLUDED.anomaly_count, open_anomalies = EXCLUDED.open_anomalies,"
        " claim_due_at = EXCLUDED.claim_due_at, resolve_due_at = EXCLUDED.resolve_due_at,"
        " due_at = EXCLUDED.due_at, claimed_by = EXCLUDED.claimed_by,"
        " claimed_at = EXCLUDED.claimed_at, closed_at = EXCLUDED.closed_at,"
        " closed_by = EXCLUDED.closed_by, close_reason = EXCLUDED.close_reason,"
        " cleared_at = EXCLUDED.cleared_at, reopened = EXCLUDED.reopened,"
        " next_escalation_at = EXCLUDED.next_escalation_at,"
        " next_reminder_at = EXCLUDED.next_reminder_at, updated_at = now()",
        [uuid.UUID(i.id) for i in items],
        [i.team for i in items],
        [i.group_key for i in items],
        [str(i.state) for i in items],
        [i.severity for i in items],
        [i.initial_severity for i in items],
        [i.priority for i in items],
        [i.tier for i in items],
        [i.title for i in items],
        [orjson.dumps(list(i.rules)).decode() for i in items],  # JSON: a list per row
        [dict(i.labels) for i in items],
        [i.anomaly_count for i in items],
        [i.open_anomalies for i in items],
        [i.created_at for i in items],
        [i.claim_due_at for i in items],
        [i.resolve_due_at for i in items],
        [i.due_at for i in items],
        [i.claimed_by for i in items],
        [i.claimed_at for i in items],
        [i.closed_at for i in items],
        [i.closed_by for i in items],
        [i.close_reason for i in items],
        [i.cleared_at for i in items],
        [i.reopened for i in items],
        [i.next_escalation_at for i in items],
        [i.next_reminder_at for i in items],
    )


async def add_timeline(conn: Connection, entries: Sequence[tuple[str, Entry]]) -> None:
    """(item id, entry) pairs in one statement, their ids in the order given."""
    if not entries:
        return
    await conn.execute(
        "INSERT INTO work_item_timeline (work_item_id, at, what, actor, actor_name, details)"
        " SELECT work_item_id, at, what, actor, actor_name, details FROM unnest($1::uuid[],"
        " $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::jsonb[]) WITH ORDINALITY"
        " AS e(work_item_id, at, what, actor, actor_name, details, n) ORDER BY n",
        [uuid.UUID(item_id) for item_id, _ in entries],
        [e.at for _, e in entries],
        [e.what for _, e in entries],
        [e.actor for _, e in entries],
        [e.actor_name for _, e in entries],
        [dict(e.details) for _, e in entries],
    )


async def add_links(conn: Connection, links: Sequence[tuple[str, str, str]]) -> None:
    """(item id, kind, ref) in one statement; those an item has already are kept."""
    if links:
        await conn.execute(
            "INSERT INTO work_item_links (work_item_id, kind, ref)"
            " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING",
            [uuid.UUID(item_id) for item_id, _, _ in links],
            [kind for _, kind, _ in links],
            [ref for _, _, ref in links],
        )


_ANOMALY_COLUMNS = (
    "work_item_id, fingerprint, team, rule, severity, summary, labels, event_time, detected_at,"
    " fired, cleared_at"
)


async def lock_anomalies_of(conn: Connection, fingerprints: Sequence[str]) -> list[ItemAnomaly]:
    """Every item's row of these fingerprints, locked."""
    rows = await conn.fetch(
        f"SELECT {_ANOMALY_COLUMNS} FROM work_item_anomalies WHERE fingerprint = ANY($1::text[])"
        " ORDER BY work_item_id, fingerprint FOR UPDATE",
        list(fingerprints),
    )
    return [ItemAnomaly(str(row[0]), *row[1:]) for row in rows]


async def save_anomalies(conn: Connection, rows: Sequence[ItemAnomaly]) -> None:
    """Rows in one statement (distinct keys), new or changed (fired again, cleared)."""
    if not rows:
        return
    await conn.execute(
        f"INSERT INTO work_item_anomalies ({_ANOMALY_COLUMNS})"
        " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],"
        " $6::text[], $7::jsonb[], $8::timestamptz[], $9::timestamptz[], $10::int[],"
        " $11::timestamptz[])"
        " ON CONFLICT (work_item_id, fingerprint) DO UPDATE SET event_time = EXCLUDED.event_time,"
        " fired = EXCLUDED.fired, cleared_at = EXCLUDED.cleared_at",
        [uuid.UUID(r.work_item_id) for r in rows],
        [r.fingerprint for r in rows],
        [r.team for r in rows],
        [r.rule for r in rows],
        [r.severity for r in rows],
        [r.summary for r in rows],
        [dict(r.labels) for r in rows],
        [r.event_time for r in rows],
        [r.detected_at for r in rows],
        [r.fired for r in rows],
        [r.cleared_at for r in rows],
    )


async def clearances_of(conn: Connection, fingerprints: Sequence[str]) -> dict[str, datetime]:
    """The latest clearance (event time) seen of each fingerprint that has one."""
    rows = await conn.fetch(
        "SELECT fingerprint, event_time FROM anomaly_clearances"
        " WHERE fingerprint = ANY($1::text[])",
        list(fingerprints),
    )
    return {row["fingerprint"]: row["event_time"] for row in rows}


async def record_clearances(conn: Connection, clearances: Mapping[str, datetime]) -> None:
    """Clearances seen, in one statement: each fingerprint keeps its latest event time."""
    if clearances:
        await conn.execute(
            "INSERT INTO anomaly_clearances (fingerprint, event_time)"
            " SELECT * FROM unnest($1::text[], $2::timestamptz[])"
            " ON CONFLICT (fingerprint) DO UPDATE SET event_time = greatest("
            "   anomaly_clearances.event_time, EXCLUDED.event_time), received_at = now()",
            list(clearances),
            list(clearances.values()),
        )


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
