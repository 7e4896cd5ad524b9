"""PostgreSQL adapter for deliveries, their attempts and the channels' rate windows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from orderguard.services.notifier.channels.base import Outcome
from orderguard.services.notifier.deliveries.domain import PlannedDelivery
from orderguard.services.notifier.deliveries.policy import admitted
from orderguard.services.notifier.repository import Connection

VIEW_COLUMNS = (
    "id, request_id, source_event_id, channel, recipient_kind, recipient_id, contact_masked,"
    " template, language, severity, status, attempts, attempt_limit, next_attempt_at,"
    " deferred_reason, last_error, created_at, updated_at, delivered_at"
)
SEND_COLUMNS = f"{VIEW_COLUMNS}, contact, params, subject, body_text, body_html, dedup_key"


async def recently_sent_same(conn: Connection, key: str, request_id: str, since: datetime) -> bool:
    """A delivery of the same message (other request) created since `since`, not failed."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM deliveries WHERE dedup_key = $1 AND request_id <> $2"
            " AND created_at >= $3 AND status <> 'failed')",
            key,
            request_id,
            since,
        )
    )


async def insert_delivery(conn: Connection, planned: PlannedDelivery, attempt_limit: int) -> bool:
    """Insert; False when this (request, channel) is there already (a redelivered request)."""
    request = planned.request
    inserted = await conn.fetchval(
        "INSERT INTO deliveries (id, request_id, source_event_id, channel, recipient_kind,"
        " recipient_id, contact, contact_masked, template, language, severity, params, subject,"
        " body_text, body_html, dedup_key, status, attempt_limit, next_attempt_at,"
        " deferred_reason, last_error)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,"
        " $18, $19, $20, $21)"
        " ON CONFLICT (request_id, channel) DO NOTHING RETURNING true",
        planned.id,
        request.request_id,
        request.source_event_id,
        planned.channel,
        request.recipient_kind,
        request.recipient_id,
        planned.contact,
        planned.contact_masked,
        request.template,
        planned.language,
        request.severity,
        request.params,
        planned.subject,
        planned.text,
        planned.html,
        planned.dedup_key,
        planned.status,
        attempt_limit,
        planned.next_attempt_at,
        planned.deferred_reason,
        planned.error,
    )
    return bool(inserted)


async def lock_due(conn: Connection, now: datetime, limit: int) -> list[dict[str, Any]]:
    """Due deliveries, oldest due first, locked; rows another worker holds are skipped."""
    rows = await conn.fetch(
        f"SELECT {SEND_COLUMNS} FROM deliveries"
        " WHERE status IN ('pending', 'retrying') AND next_attempt_at <= $1"
        " ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    return [dict(row) for row in rows]


async def take_from_window(
    conn: Connection, channel: str, window_start: datetime, limit: int | None, wanted: int
) -> int:
    """Reserve up to `wanted` sends in the channel's window (row-locked); returns how many."""
    if limit is None:
        return wanted
    await conn.execute(
        "INSERT INTO channel_rate_windows (channel, window_start) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING",
        channel,
        window_start,
    )
    used = await conn.fetchval(
        "SELECT sent FROM channel_rate_windows WHERE channel = $1 AND window_start = $2 FOR UPDATE",
        channel,
        window_start,
    )
    granted = admitted(limit, int(used), wanted)
    if granted:
        await conn.execute(
            "UPDATE channel_rate_windows SET sent = sent + $3"
            " WHERE channel = $1 AND window_start = $2",
            channel,
            window_start,
            granted,
        )
    return granted


async def forget_windows_before(conn: Connection, start: datetime) -> None:
    """Past windows count for nothing: keep the table to the current ones."""
    await conn.execute("DELETE FROM channel_rate_windows WHERE window_start < $1", start)


async def defer(conn: Connection, ids: list[uuid.UUID], until: datetime, reason: str) -> None:
    await conn.execute(
        "UPDATE deliveries SET next_attempt_at = $2, deferred_reason = $3,"
        " updated_at = clock_timestamp() WHERE id = ANY($1::uuid[])",
        ids,
        until,
        reason,
    )


async def record_attempt(
    conn: Connection,
    delivery_id: uuid.UUID,
    number: int,
    outcome: Outcome,
    started_at: datetime,
    duration_s: float,
) -> None:
    await conn.execute(
        "INSERT INTO delivery_attempts (delivery_id, number, outcome, response_status,"
        " response_snippet, error, started_at, duration_s)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        delivery_id,
        number,
        outcome.status,
        outcome.response_status,
        outcome.response_snippet,
        outcome.error,
        started_at,
        duration_s,
    )


async def update_after_attempt(
    conn: Connection,
    delivery_id: uuid.UUID,
    *,
    status: str,
    attempts: int,
    next_attempt_at: datetime | None,
    deferred_reason: str | None,
    error: str | None,
    delivered_at: datetime | None,
) -> None:
    await conn.execute(
        "UPDATE deliveries SET status = $2, attempts = $3, next_attempt_at = $4,"
        " deferred_reason = $5, last_error = $6, delivered_at = $7, updated_at = clock_timestamp()"
        " WHERE id = $1",
        delivery_id,
        status,
        attempts,
        next_attempt_at,
        deferred_reason,
        error,
        delivered_at,
    )


async def lock_delivery(conn: Connection, delivery_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {VIEW_COLUMNS} FROM deliveries WHERE id = $1 FOR UPDATE", delivery_id
    )
    return dict(row) if row is not None else None


async def reopen(
    conn: Connection, delivery_id: uuid.UUID, now: datetime, extra_attempts: int
) -> None:
    """A resend: due now, with a fresh budget of attempts on top of those made."""
    await conn.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = $2,"
        " attempt_limit = attempts + $3, deferred_reason = 'resend', last_error = NULL,"
        " updated_at = clock_timestamp() WHERE id = $1",
        delivery_id,
        now,
        extra_attempts,
    )


async def find_deliveries(
    conn: Connection,
    *,
    status: str | None,
    channel: str | None,
    recipient: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Newest first."""
    rows = await conn.fetch(
        f"SELECT {VIEW_COLUMNS} FROM deliveries"
        " WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR channel = $2)"
        " AND ($3::text IS NULL OR recipient_id = $3)"
        " ORDER BY created_at DESC, id DESC LIMIT $4",
        status,
        channel,
        recipient,
        limit,
    )
    return [dict(row) for row in rows]


async def delivery_with_attempts(conn: Connection, delivery_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {VIEW_COLUMNS} FROM deliveries WHERE id = $1", delivery_id)
    if row is None:
        return None
    attempts = await conn.fetch(
        "SELECT number, outcome, response_status, response_snippet, error, started_at,"
        " duration_s FROM delivery_attempts WHERE delivery_id = $1 ORDER BY number",
        delivery_id,
    )
    return {**dict(row), "attempt_log": [dict(attempt) for attempt in attempts]}
