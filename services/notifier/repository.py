"""PostgreSQL adapter for routed fingerprints and notifications (schema `notifier`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from orderguard.services.notifier.domain import Notification

Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy


@dataclass(frozen=True, slots=True)
class RoutedFingerprint:
    fingerprint: str
    rule: str
    routes: list[str]
    queues: list[str]
    event_id: str


async def claim_fingerprints(conn: Connection, claims: Sequence[RoutedFingerprint]) -> set[str]:
    """Record fingerprints as routed; returns those not routed before (theirs to route now).

    A concurrent transaction claiming the same fingerprint waits on the key, then gets nothing.
    """
    if not claims:
        return set()
    rows = await conn.fetch(
        "INSERT INTO routed_anomalies (fingerprint, rule, routes, queues, event_id)"
        " SELECT c.fingerprint, c.rule, c.routes, c.queues, c.event_id"
        " FROM jsonb_to_recordset($1::jsonb)"
        "   AS c(fingerprint text, rule text, routes text[], queues text[], event_id text)"
        " ORDER BY c.fingerprint"  # one lock order for everyone
        " ON CONFLICT (fingerprint) DO NOTHING RETURNING fingerprint",
        [
            {
                "fingerprint": c.fingerprint,
                "rule": c.rule,
                "routes": c.routes,
                "queues": c.queues,
                "event_id": c.event_id,
            }
            for c in claims
        ],
    )
    return {row["fingerprint"] for row in rows}


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
