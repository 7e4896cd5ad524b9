"""PostgreSQL adapter for routed fingerprints and notifications (schema `notifier`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

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


# -- anomaly states, suppression, silences and route groups ---------------------------------


@dataclass(frozen=True, slots=True)
class AnomalyState:
    fingerprint: str
    labels: dict[str, str]
    anomaly: dict[str, Any]
    status: str
    outcome: str | None
    traceparent: str | None


def _state(row: asyncpg.Record) -> AnomalyState:
    return AnomalyState(
        row["fingerprint"],
        row["labels"],
        row["anomaly"],
        row["status"],
        row["outcome"],
        row["traceparent"],
    )


async def lock_anomaly_states(
    conn: Connection, fingerprints: Sequence[str]
) -> dict[str, AnomalyState]:
    rows = await conn.fetch(
        "SELECT fingerprint, labels, anomaly, status, outcome, traceparent FROM anomaly_states"
        " WHERE fingerprint = ANY($1::text[]) ORDER BY fingerprint FOR UPDATE",
        sorted(fingerprints),
    )
    return {row["fingerprint"]: _state(row) for row in rows}


async def insert_anomaly_state(
    conn: Connection,
    fingerprint: str,
    rule: str,
    labels: dict[str, str],
    anomaly: dict[str, Any],
    status: str,
    traceparent: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO anomaly_states (fingerprint, rule, labels, anomaly, status, traceparent)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        fingerprint,
        rule,
        labels,
        anomaly,
        status,
        traceparent,
    )


async def set_anomaly_outcome(conn: Connection, fingerprint: str, outcome: str) -> None:
    await conn.execute(
        "UPDATE anomaly_states SET outcome = $2, updated_at = now() WHERE fingerprint = $1",
        fingerprint,
        outcome,
    )


async def resolve_anomaly_state(
    conn: Connection, fingerprint: str, anomaly: dict[str, Any]
) -> None:
    await conn.execute(
        "UPDATE anomaly_states SET status = 'resolved', anomaly = $2, updated_at = now()"
        " WHERE fingerprint = $1",
        fingerprint,
        anomaly,
    )


async def firing_sources(
    conn: Connection, equal: dict[str, str], exclude: str, after: str = "", limit: int = 1000
) -> list[tuple[str, dict[str, str]]]:
    """Firing anomalies whose labels include these values (inhibition source candidates), by
    fingerprint, a page after `after`."""
    rows = await conn.fetch(
        "SELECT fingerprint, labels FROM anomaly_states"
        " WHERE status = 'firing' AND labels @> $1::jsonb AND fingerprint <> $2"
        " AND fingerprint > $3 ORDER BY fingerprint LIMIT $4",
        equal,
        exclude,
        after,
        limit,
    )
    return [(row["fingerprint"], row["labels"]) for row in rows]


async def record_routed(
    conn: Connection, fingerprint: str, rule: str, matches: list[dict[str, Any]], event_id: str
) -> bool:
    """Record where a fingerprint was routed; False if it was routed before."""
    inserted = await conn.fetchval(
        "INSERT INTO routed_anomalies (fingerprint, rule, routes, queues, event_id, matches)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (fingerprint) DO NOTHING"
        " RETURNING fingerprint",
        fingerprint,
        rule,
        [m["route"] for m in matches],
        [m["queue"] for m in matches],
        event_id,
        matches,
    )
    return inserted is not None


async def mark_routed_resolved(conn: Connection, fingerprint: str) -> list[dict[str, Any]]:
    """The matches a routed fingerprint went to, marking it resolved."""
    matches = await conn.fetchval(
        "UPDATE routed_anomalies SET resolved_at = coalesce(resolved_at, now())"
        " WHERE fingerprint = $1 RETURNING matches",
        fingerprint,
    )
    return list(matches or [])


async def suppress(
    conn: Connection,
    fingerprint: str,
    reason: str,
    event_id: str,
    *,
    silence_id: uuid.UUID | None = None,
    inhibit_rule: str | None = None,
    source_fingerprint: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO suppressed_anomalies"
        " (fingerprint, reason, silence_id, inhibit_rule, source_fingerprint, event_id)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (fingerprint) DO UPDATE SET reason = EXCLUDED.reason,"
        "   silence_id = EXCLUDED.silence_id, inhibit_rule = EXCLUDED.inhibit_rule,"
        "   source_fingerprint = EXCLUDED.source_fingerprint, released_at = NULL",
        fingerprint,
        reason,
        silence_id,
        inhibit_rule,
        source_fingerprint,
        event_id,
    )
    if silence_id is not None:
        await conn.execute(
            "INSERT INTO silenced_anomalies (silence_id, fingerprint) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING",
            silence_id,
            fingerprint,
        )


async def release(conn: Connection, fingerprint: str) -> None:
    await conn.execute(
        "UPDATE suppressed_anomalies SET released_at = now() WHERE fingerprint = $1", fingerprint
    )


@dataclass(frozen=True, slots=True)
class Suppressed:
    state: AnomalyState
    event_id: str
    reason: str


_SUPPRESSED = (
    "SELECT a.fingerprint, a.labels, a.anomaly, a.status, a.outcome, a.traceparent, s.event_id,"
    " s.reason FROM suppressed_anomalies s JOIN anomaly_states a USING (fingerprint)"
)


async def lock_inhibited_by(conn: Connection, source: str) -> list[Suppressed]:
    """Still-firing anomalies this source inhibits, not yet released."""
    rows = await conn.fetch(
        _SUPPRESSED + " WHERE s.source_fingerprint = $1 AND s.released_at IS NULL"
        " AND a.status = 'firing' ORDER BY a.fingerprint FOR UPDATE OF s",
        source,
    )
    return [Suppressed(_state(row), row["event_id"], row["reason"]) for row in rows]


async def lock_silenced_past_their_silence(
    conn: Connection, now: datetime, limit: int
) -> list[Suppressed]:
    """Still-firing anomalies whose silence has ended, not yet released."""
    rows = await conn.fetch(
        _SUPPRESSED + " JOIN silences si ON si.id = s.silence_id"
        " WHERE s.reason = 'silenced' AND s.released_at IS NULL AND a.status = 'firing'"
        " AND si.ends_at <= $1 ORDER BY a.fingerprint LIMIT $2"
        # The anomaly's row too: the router, resolving it meanwhile, waits for the release.
        " FOR UPDATE OF s, a SKIP LOCKED",
        now,
        limit,
    )
    return [Suppressed(_state(row), row["event_id"], row["reason"]) for row in rows]


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


async def active_silences(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, matchers, author, comment, starts_at, ends_at, created_at FROM silences"
        " WHERE starts_at <= $1 AND ends_at > $1",
        now,
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


async def lock_group(conn: Connection, group_key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM route_groups WHERE group_key = $1 FOR UPDATE", group_key
    )


async def group_members(conn: Connection, group_key: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT fingerprint, severity, firing, pending FROM route_group_members"
        " WHERE group_key = $1 ORDER BY added_at, fingerprint",
        group_key,
    )


async def lock_due_groups(conn: Connection, now: datetime, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM route_groups WHERE next_flush_at <= $1"
        " ORDER BY next_flush_at, group_key LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )


async def save_group(
    conn: Connection,
    *,
    group_key: str,
    route: str,
    queue: str,
    channels: list[str],
    group_wait_ms: int,
    group_interval_ms: int,
    repeat_interval_ms: int | None,
    created_at: datetime,
    next_flush_at: datetime | None,
    last_flush_at: datetime | None,
    flushes: int,
    members: list[tuple[str, str, bool, bool]],  # changed: fingerprint, severity, firing, pending
    removed: list[str],
    closed: bool,
) -> None:
    if closed:
        await conn.execute("DELETE FROM route_groups WHERE group_key = $1", group_key)
        return
    await conn.execute(
        "INSERT INTO route_groups (group_key, route, queue, channels, group_wait_ms,"
        " group_interval_ms, repeat_interval_ms, created_at, next_flush_at, last_flush_at, flushes)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT (group_key) DO UPDATE SET next_flush_at = EXCLUDED.next_flush_at,"
        "   last_flush_at = EXCLUDED.last_flush_at, flushes = EXCLUDED.flushes",
        group_key,
        route,
        queue,
        channels,
        group_wait_ms,
        group_interval_ms,
        repeat_interval_ms,
        created_at,
        next_flush_at,
        last_flush_at,
        flushes,
    )
    if removed:
        await conn.execute(
            "DELETE FROM route_group_members WHERE group_key = $1"
            " AND fingerprint = ANY($2::text[])",
            group_key,
            removed,
        )
    if members:
        await conn.executemany(
            "INSERT INTO route_group_members (group_key, fingerprint, severity, firing, pending)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (group_key, fingerprint) DO UPDATE"
            " SET firing = EXCLUDED.firing, pending = EXCLUDED.pending",
            [(group_key, *m) for m in members],
        )


async def anomalies_of(conn: Connection, fingerprints: Sequence[str]) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT fingerprint, anomaly, traceparent FROM anomaly_states"
        " WHERE fingerprint = ANY($1::text[])",
        list(fingerprints),
    )
    return {row["fingerprint"]: dict(row) for row in rows}


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
