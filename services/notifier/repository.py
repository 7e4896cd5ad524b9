"""PostgreSQL adapter for routed fingerprints and notifications (schema `notifier`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from orderguard.services.notifier.domain import Notification
from orderguard.shared.db import Connection


async def record_notifications(
    conn: Connection, notifications: Sequence[Notification]
) -> set[uuid.UUID]:
    """Insert notifications; returns the ids recorded now (a redelivered one is already there)."""
    if not notifications:
        return set()
    rows = await conn.fetch(
        "INSERT INTO notifications"
        " (id, channel, queue, route, rule, fingerprint, severity, summary, labels,"
        "  routed_event_id, status)"
        " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],"
        "   $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::text[], $11::text[])"
        " ON CONFLICT DO NOTHING RETURNING id",
        [n.id for n in notifications],
        [n.channel for n in notifications],
        [n.queue for n in notifications],
        [n.route for n in notifications],
        [n.rule for n in notifications],
        [n.fingerprint for n in notifications],
        [n.severity for n in notifications],
        [n.summary for n in notifications],
        [n.labels for n in notifications],
        [n.routed_event_id for n in notifications],
        [n.status for n in notifications],
    )
    return {row["id"] for row in rows}


_COLUMNS = (
    "id, channel, queue, route, rule, fingerprint, severity, summary, labels, status, created_at"
)


async def find_notifications(
    conn: Connection,
    *,
    queue: str | None = None,
    rule: str | None = None,
    fingerprint: str | None = None,
    since: datetime | None = None,
    limit: int,
) -> list[dict[str, Any]]:
    """Newest first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM notifications"
        " WHERE ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR rule = $2)"
        " AND ($3::text IS NULL OR fingerprint = $3)"
        " AND ($4::timestamptz IS NULL OR created_at >= $4)"
        " ORDER BY created_at DESC, id DESC LIMIT $5",
        queue,
        rule,
        fingerprint,
        since,
        limit,
    )
    return [dict(row) for row in rows]


async def notification(conn: Connection, notification_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM notifications WHERE id = $1", notification_id
    )
    return dict(row) if row is not None else None


# -- what the router kept back, silences and route groups, as the API shows them --------------


async def suppressed_counts(conn: Connection) -> dict[str, dict[str, int]]:
    rows = await conn.fetch(
        "SELECT s.reason, (s.released_at IS NULL AND a.status = 'firing') AS held, count(*)"
        " FROM suppressed_anomalies s JOIN anomaly_states a USING (fingerprint)"
        " GROUP BY 1, 2"
    )
    counts: dict[str, dict[str, int]] = {
        reason: {"held": 0, "total": 0} for reason in ("silenced", "inhibited")
    }
    for row in rows:
        counts[row["reason"]]["total"] += row["count"]
        if row["held"]:
            counts[row["reason"]]["held"] += row["count"]
    return counts


_SILENCE_COLUMNS = (
    "id, matchers, author, comment, starts_at, ends_at, created_at, expired_by, updated_at,"
    " (SELECT count(*) FROM silenced_anomalies m WHERE m.silence_id = silences.id) AS muted"
)


async def insert_silence(
    conn: Connection,
    silence_id: uuid.UUID,
    matchers: list[str],
    author: str,
    comment: str,
    starts_at: datetime,
    ends_at: datetime,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        "INSERT INTO silences (id, matchers, author, comment, starts_at, ends_at)"
        f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_SILENCE_COLUMNS}",
        silence_id,
        matchers,
        author,
        comment,
        starts_at,
        ends_at,
    )
    assert row is not None
    return dict(row)


async def silence(conn: Connection, silence_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE id = $1", silence_id)
    return dict(row) if row is not None else None


async def find_silences(
    conn: Connection, state: str | None, now: datetime, limit: int
) -> list[dict[str, Any]]:
    """Newest first; `state` pending, active or expired at `now`."""
    rows = await conn.fetch(
        f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE"
        " ($1::text IS NULL"
        "  OR ($1 = 'pending' AND starts_at > $2)"
        "  OR ($1 = 'active' AND starts_at <= $2 AND ends_at > $2)"
        "  OR ($1 = 'expired' AND ends_at <= $2))"
        " ORDER BY created_at DESC, id DESC LIMIT $3",
        state,
        now,
        limit,
    )
    return [dict(row) for row in rows]


async def expire_silence(
    conn: Connection, silence_id: uuid.UUID, now: datetime, by: str
) -> dict[str, Any] | None:
    """End a silence now (a pending one ends before it starts); None if unknown. An expired
    silence stays as it was."""
    row = await conn.fetchrow(
        "UPDATE silences SET starts_at = least(starts_at, $2 - interval '1 microsecond'),"
        "   ends_at = $2,"
        "   expired_by = $3, updated_at = now()"
        f" WHERE id = $1 AND ends_at > $2 RETURNING {_SILENCE_COLUMNS}",
        silence_id,
        now,
        by,
    )
    if row is not None:
        return dict(row)
    return await silence(conn, silence_id)


async def find_groups(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """Route groups with their timers and member counts, next flush first."""
    rows = await conn.fetch(
        "SELECT g.group_key, g.route, g.queue, g.created_at, g.next_flush_at, g.last_flush_at,"
        " g.flushes, count(m.fingerprint) FILTER (WHERE m.firing) AS firing,"
        " count(m.fingerprint) FILTER (WHERE m.pending) AS pending"
        " FROM route_groups g LEFT JOIN route_group_members m USING (group_key)"
        " GROUP BY g.group_key ORDER BY g.next_flush_at NULLS LAST, g.group_key LIMIT $1",
        limit,
    )
    return [dict(row) for row in rows]
