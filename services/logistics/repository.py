"""PostgreSQL adapter for shipments, their tracking numbers, scans and history (schema `logistics`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import asyncpg

from orderguard.services.logistics.domain import Scan, Shipment
from orderguard.shared.db import Connection

_COLUMNS = (
    "shipment_id, order_id, warehouse, carrier, tracking_number, status, promised_delivery_by,"
    " customer_id, phone, created_at, dispatched_at, delivered_at, last_scan_at, last_exception,"
    " compensated_for"
)


def _shipment(row: asyncpg.Record) -> Shipment:
    return Shipment(**{name: row[name] for name in _COLUMNS.split(", ")})


def _values(s: Shipment) -> tuple[Any, ...]:
    return tuple(getattr(s, name) for name in _COLUMNS.split(", "))


async def lock_shipments(conn: Connection, shipment_ids: Iterable[str]) -> dict[str, Shipment]:
    """These shipments, locked for the rest of the transaction (one lock order: by id)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM shipments WHERE shipment_id = ANY($1::text[])"
        " ORDER BY shipment_id FOR UPDATE",
        sorted(set(shipment_ids)),
    )
    return {row["shipment_id"]: _shipment(row) for row in rows}


async def shipment(conn: Connection, shipment_id: str) -> Shipment | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM shipments WHERE shipment_id = $1", shipment_id
    )
    return _shipment(row) if row else None


async def shipments_of_order(conn: Connection, order_id: str) -> list[Shipment]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM shipments WHERE order_id = $1 ORDER BY created_at", order_id
    )
    return [_shipment(row) for row in rows]


_TYPES = (
    "text, text, text, text, text, text, timestamptz, text, text, timestamptz, timestamptz,"
    " timestamptz, timestamptz, text, text"
)


async def save_shipments(conn: Connection, shipments: Iterable[Shipment]) -> None:
    """The shipments in one statement; one saved twice in a batch is written as it is last."""
    last = {s.shipment_id: s for s in shipments}
    if not last:
        return
    columns = [list(values) for values in zip(*(_values(s) for s in last.values()), strict=True)]
    arrays = ", ".join(f"${i}::{kind}[]" for i, kind in enumerate(_TYPES.split(", "), start=1))
    updates = ", ".join(
        f"{name} = EXCLUDED.{name}" for name in _COLUMNS.split(", ")[3:] if name != "created_at"
    )
    await conn.execute(
        f"INSERT INTO shipments ({_COLUMNS}) SELECT * FROM unnest({arrays})"
        f" ON CONFLICT (shipment_id) DO UPDATE SET {updates}, updated_at = now()",
        *columns,
    )


async def add_tracking(conn: Connection, rows: Iterable[tuple[str, str, str, datetime]]) -> None:
    """(carrier, tracking number, shipment id, assigned at): a number once given stays known."""
    rows = list(rows)
    if not rows:
        return
    await conn.execute(
        "INSERT INTO shipment_tracking (carrier, tracking_number, shipment_id, assigned_at)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])"
        " ON CONFLICT DO NOTHING",
        *(list(column) for column in zip(*rows, strict=True)),
    )


async def tracking_owner(conn: Connection, carrier: str, tracking_number: str) -> str | None:
    return await conn.fetchval(
        "SELECT shipment_id FROM shipment_tracking WHERE carrier = $1 AND tracking_number = $2",
        carrier,
        tracking_number,
    )


async def shipments_by_tracking(
    conn: Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    keys = sorted(set(keys))
    rows = await conn.fetch(
        "SELECT carrier, tracking_number, shipment_id FROM shipment_tracking"
        " WHERE (carrier, tracking_number) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [carrier for carrier, _ in keys],
        [number for _, number in keys],
    )
    return {(row["carrier"], row["tracking_number"]): row["shipment_id"] for row in rows}


async def tracking_of(conn: Connection, shipment_id: str) -> list[Mapping[str, Any]]:
    rows = await conn.fetch(
        "SELECT carrier, tracking_number, assigned_at FROM shipment_tracking"
        " WHERE shipment_id = $1 ORDER BY assigned_at, carrier",
        shipment_id,
    )
    return [dict(row) for row in rows]


async def applied_scans(conn: Connection, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (carrier, scan id) pairs already applied."""
    keys = sorted(set(keys))
    rows = await conn.fetch(
        "SELECT carrier, scan_id FROM shipment_scans"
        " WHERE (carrier, scan_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [carrier for carrier, _ in keys],
        [scan_id for _, scan_id in keys],
    )
    return {(row["carrier"], row["scan_id"]) for row in rows}


async def add_scans(conn: Connection, scans: Iterable[tuple[str, Scan, bool]]) -> None:
    """(shipment id, scan, whether it moved the status)."""
    scans = list(scans)
    if not scans:
        return
    await conn.execute(
        "INSERT INTO shipment_scans (carrier, scan_id, shipment_id, tracking_number, status,"
        " location, exception_reason, scanned_at, status_changed)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
        " $6::text[], $7::text[], $8::timestamptz[], $9::bool[])",
        [scan.carrier for _, scan, _ in scans],
        [scan.scan_id for _, scan, _ in scans],
        [shipment_id for shipment_id, _, _ in scans],
        [scan.tracking_number for _, scan, _ in scans],
        [scan.status for _, scan, _ in scans],
        [scan.location for _, scan, _ in scans],
        [scan.exception_reason for _, scan, _ in scans],
        [scan.scanned_at for _, scan, _ in scans],
        [changed for _, _, changed in scans],
    )


async def scans_of(conn: Connection, shipment_id: str) -> list[Mapping[str, Any]]:
    rows = await conn.fetch(
        "SELECT carrier, scan_id, tracking_number, status, location, exception_reason, scanned_at,"
        " status_changed, received_at FROM shipment_scans WHERE shipment_id = $1"
        " ORDER BY scanned_at, received_at",
        shipment_id,
    )
    return [dict(row) for row in rows]


async def add_history(
    conn: Connection, entries: Iterable[tuple[str, datetime, str, dict[str, Any]]]
) -> None:
    """(shipment id, at, what, details), in one statement, their ids in the order given."""
    entries = list(entries)
    if not entries:
        return
    await conn.execute(
        "INSERT INTO shipment_history (shipment_id, at, what, details)"
        " SELECT shipment_id, at, what, details FROM unnest($1::text[], $2::timestamptz[],"
        " $3::text[], $4::jsonb[]) WITH ORDINALITY AS h(shipment_id, at, what, details, n)"
        " ORDER BY n",
        *(list(column) for column in zip(*entries, strict=True)),
    )


async def history_of(conn: Connection, shipment_id: str) -> list[Mapping[str, Any]]:
    rows = await conn.fetch(
        "SELECT at, what, details FROM shipment_history WHERE shipment_id = $1 ORDER BY id",
        shipment_id,
    )
    return [dict(row) for row in rows]


async def lock_owed_compensation(
    conn: Connection, now: datetime, overdue_after_s: float, stalled_after_s: float, limit: int
) -> list[Shipment]:
    """Undelivered, uncompensated shipments overdue or silent long enough; skipped when another
    worker holds them."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM shipments"
        " WHERE delivered_at IS NULL AND compensated_for IS NULL AND ("
        "   promised_delivery_by <= $1::timestamptz - make_interval(secs => $2::float8)"
        "   OR (status IN ('picked_up', 'in_transit', 'out_for_delivery')"
        "       AND last_scan_at <= $1::timestamptz - make_interval(secs => $3::float8)))"
        " ORDER BY promised_delivery_by LIMIT $4 FOR UPDATE SKIP LOCKED",
        now,
        overdue_after_s,
        stalled_after_s,
        limit,
    )
    return [_shipment(row) for row in rows]


async def webhook_receipt_seen(
    conn: Connection, carrier: str, scan_id: str, signature: str
) -> str | None:
    """'scan' or 'signature' when this webhook request was accepted before, else None."""
    row = await conn.fetchrow(
        "SELECT scan_id = $2 AND carrier = $1 AS same_scan FROM carrier_webhook_receipts"
        " WHERE (carrier = $1 AND scan_id = $2) OR signature = $3 LIMIT 1",
        carrier,
        scan_id,
        signature,
    )
    if row is None:
        return None
    return "scan" if row["same_scan"] else "signature"


async def add_webhook_receipt(conn: Connection, carrier: str, scan_id: str, signature: str) -> None:
    await conn.execute(
        "INSERT INTO carrier_webhook_receipts (carrier, scan_id, signature) VALUES ($1, $2, $3)",
        carrier,
        scan_id,
        signature,
    )


# Which shipments each operators' list holds (the console's shipments page); a whitelist.
_LISTS = {
    "stalled": "delivered_at IS NULL AND status IN ('picked_up', 'in_transit', 'out_for_delivery')"
    " AND last_scan_at <= $1::timestamptz - make_interval(secs => $2::float8)",
    "overdue": "delivered_at IS NULL AND promised_delivery_by <= $1::timestamptz",
    "exception": "delivered_at IS NULL AND last_exception IS NOT NULL",
    "compensated": "compensated_for IS NOT NULL",
}
_LIST_ORDER = {
    "stalled": "last_scan_at",
    "overdue": "promised_delivery_by",
    "exception": "coalesce(last_scan_at, created_at) DESC",
    "compensated": "promised_delivery_by DESC",
}


async def find_shipments(
    conn: Connection, which: str, now: datetime, silent_s: float, limit: int
) -> list[Shipment]:
    """The shipments of one list (stalled, overdue, exception, compensated), most urgent first."""
    rows = await conn.fetch(
        # Every list names both parameters, so PostgreSQL knows their types whichever is used.
        f"SELECT {_COLUMNS} FROM shipments WHERE {_LISTS[which]}"
        " AND $1::timestamptz IS NOT NULL AND $2::float8 IS NOT NULL"
        f" ORDER BY {_LIST_ORDER[which]}, shipment_id LIMIT $3",
        now,
        silent_s,
        limit,
    )
    return [_shipment(row) for row in rows]
