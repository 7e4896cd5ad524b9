"""PostgreSQL adapter for orders, their lines and their timeline (schema `orders`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from orderguard.services.order.domain import (
    Actor,
    Address,
    HoldReason,
    Line,
    Order,
    OrderStatus,
    Priority,
    TimelineEntry,
)
from orderguard.shared.db import Connection


async def add(conn: Connection, order: Order) -> None:
    await conn.execute(
        "INSERT INTO orders (order_id, customer_id, channel, warehouse, status, phone,"
        " shipping_address, total_amount, placed_at, updated_at, member_level, express,"
        " priority_score, priority_level, payment_due_at, customer_type)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        order.order_id,
        order.customer_id,
        order.channel,
        order.warehouse,
        str(order.status),
        order.phone,
        asdict(order.address),
        order.total_amount,
        order.placed_at,
        order.updated_at,
        order.member_level,
        order.express,
        order.priority.score,
        order.priority.level,
        order.payment_due_at,
        order.customer_type,
    )
    await _save_mutable(conn, order)
    await conn.executemany(
        "INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price)"
        " VALUES ($1, $2, $3, $4, $5)",
        [
            (order.order_id, n, line.sku, line.quantity, line.unit_price)
            for n, line in enumerate(order.lines, start=1)
        ],
    )


_COLUMNS = (
    "order_id, customer_id, channel, warehouse, status, phone, shipping_address, placed_at,"
    " updated_at, member_level, express, priority_score, priority_level, payment_due_at,"
    " payment_id, paid_amount, promised_delivery_by, delivered_at, held_from, hold_reason,"
    " hold_note, hold_release_at, customer_type"
)


async def orders_of_customer(conn: Connection, customer_id: str) -> int:
    """How many orders the customer has placed here (any status)."""
    return int(
        await conn.fetchval("SELECT count(*) FROM orders WHERE customer_id = $1", customer_id)
    )


async def get(conn: Connection, order_id: str, for_update: bool = False) -> Order | None:
    """The order, or None; with `for_update` its row stays locked until the transaction ends."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM orders WHERE order_id = $1"
        + (" FOR UPDATE" if for_update else ""),
        order_id,
    )
    if row is None:
        return None
    return (await _with_lines(conn, [row]))[0]


async def _with_lines(conn: Connection, rows: list[Any]) -> list[Order]:
    lines: dict[str, list[Line]] = {row["order_id"]: [] for row in rows}
    for line in await conn.fetch(
        "SELECT order_id, sku, quantity, unit_price FROM order_lines"
        " WHERE order_id = ANY($1::text[]) ORDER BY order_id, line_no",
        list(lines),
    ):
        lines[line["order_id"]].append(
            Line(sku=line["sku"], quantity=line["quantity"], unit_price=line["unit_price"])
        )
    return [_order(row, lines[row["order_id"]]) for row in rows]


def _order(row: Any, lines: list[Line]) -> Order:
    return Order(
        order_id=row["order_id"],
        customer_id=row["customer_id"],
        phone=row["phone"],
        address=Address(**row["shipping_address"]),
        lines=tuple(lines),
        channel=row["channel"],
        warehouse=row["warehouse"],
        status=OrderStatus(row["status"]),
        placed_at=row["placed_at"],
        updated_at=row["updated_at"],
        member_level=row["member_level"],
        customer_type=row["customer_type"] or "regular",
        express=row["express"],
        priority=Priority(row["priority_score"], row["priority_level"]),
        payment_due_at=row["payment_due_at"],
        payment_id=row["payment_id"],
        paid_amount=row["paid_amount"],
        promised_delivery_by=row["promised_delivery_by"],
        delivered_at=row["delivered_at"],
        held_from=OrderStatus(row["held_from"]) if row["held_from"] else None,
        hold_reason=HoldReason(row["hold_reason"]) if row["hold_reason"] else None,
        hold_note=row["hold_note"],
        hold_release_at=row["hold_release_at"],
    )


async def save(conn: Connection, order: Order) -> None:
    """Store what a transition changes (status, hold, payment, delivery)."""
    await _save_mutable(conn, order)


async def _save_mutable(conn: Connection, order: Order) -> None:
    await conn.execute(
        "UPDATE orders SET status = $2, updated_at = $3, payment_id = $4, paid_amount = $5,"
        " promised_delivery_by = $6, delivered_at = $7, held_from = $8, hold_reason = $9,"
        " hold_note = $10, hold_release_at = $11, payment_due_at = $12 WHERE order_id = $1",
        order.order_id,
        str(order.status),
        order.updated_at,
        order.payment_id,
        order.paid_amount,
        order.promised_delivery_by,
        order.delivered_at,
        str(order.held_from) if order.held_from else None,
        str(order.hold_reason) if order.hold_reason else None,
        order.hold_note,
        order.hold_release_at,
        order.payment_due_at,
    )


async def get_many(conn: Connection, order_ids: Iterable[str]) -> dict[str, Order]:
    """Our orders among these ids, locked for update (events may name orders placed elsewhere)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM orders WHERE order_id = ANY($1::text[])"
        " ORDER BY order_id FOR UPDATE",
        sorted(set(order_ids)),
    )
    return {order.order_id: order for order in await _with_lines(conn, list(rows))}


async def unpaid_past_deadline(conn: Connection, now: datetime, limit: int) -> list[Order]:
    """Placed (or failed) orders whose payment deadline has passed, locked."""
    return await _due(
        conn, "status IN ('placed', 'payment_failed') AND payment_due_at <= $1", now, limit
    )


async def holds_to_release(conn: Connection, now: datetime, limit: int) -> list[Order]:
    """Held orders whose auto-release time has come, locked."""
    return await _due(conn, "status = 'on_hold' AND hold_release_at <= $1", now, limit)


async def delivered_before(conn: Connection, before: datetime, limit: int) -> list[Order]:
    """Delivered orders delivered before `before`, locked."""
    return await _due(conn, "status = 'delivered' AND delivered_at <= $1", before, limit)


async def _due(conn: Connection, where: str, at: datetime, limit: int) -> list[Order]:
    """Orders a scheduled job must act on (`where` compares a column with $1), locked; rows
    another worker holds are skipped (it is acting on them)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM orders WHERE {where} ORDER BY order_id"
        " LIMIT $2 FOR UPDATE SKIP LOCKED",
        at,
        limit,
    )
    return await _with_lines(conn, list(rows))


async def first_time(conn: Connection, order_id: str, payment_id: str, outcome: str) -> bool:
    """Record a payment fact; False when this order already had it (under any event id)."""
    inserted = await conn.fetchval(
        "INSERT INTO order_payments (order_id, payment_id, outcome) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING RETURNING true",
        order_id,
        payment_id,
        outcome,
    )
    return bool(inserted)


async def queue(
    conn: Connection,
    status: str | None,
    hold_reason: str | None,
    customer_id: str | None,
    channel: str | None,
    limit: int,
    offset: int,
) -> list[Order]:
    """Orders matching the filters, highest priority first, then oldest first."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM orders"
        " WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR hold_reason = $2)"
        " AND ($3::text IS NULL OR customer_id = $3) AND ($4::text IS NULL OR channel = $4)"
        " ORDER BY priority_score DESC, placed_at, order_id LIMIT $5 OFFSET $6",
        status,
        hold_reason,
        customer_id,
        channel,
        limit,
        offset,
    )
    return await _with_lines(conn, list(rows))


async def known(conn: Connection, order_ids: Iterable[str]) -> set[str]:
    """Which of these ids are orders of ours (events may name orders placed elsewhere)."""
    rows = await conn.fetch(
        "SELECT order_id FROM orders WHERE order_id = ANY($1::text[])", sorted(set(order_ids))
    )
    return {row["order_id"] for row in rows}


async def record(conn: Connection, entries: Iterable[tuple[str, TimelineEntry]]) -> None:
    """Append (order id, entry) pairs; an entry whose event the order already has is skipped."""
    await conn.executemany(
        "INSERT INTO order_timeline (order_id, at, what, actor_kind, actor_id, actor_name,"
        " reason, from_status, to_status, event_type, event_id, details)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        " ON CONFLICT (order_id, event_id) DO NOTHING",
        [
            (
                order_id,
                entry.at,
                entry.what,
                entry.actor.kind,
                entry.actor.id,
                entry.actor.name,
                entry.note,
                str(entry.from_state) if entry.from_state else None,
                str(entry.to_state) if entry.to_state else None,
                entry.event_type,
                entry.event_id,
                dict(entry.details),
            )
            for order_id, entry in entries
        ],
    )


async def timeline(conn: Connection, order_id: str) -> list[TimelineEntry]:
    rows = await conn.fetch(
        "SELECT at, what, actor_kind, actor_id, actor_name, reason, from_status, to_status,"
        " event_type, event_id, details FROM order_timeline WHERE order_id = $1 ORDER BY at, id",
        order_id,
    )
    return [_entry(row) for row in rows]


def _entry(row: Any) -> TimelineEntry:
    return TimelineEntry(
        at=row["at"],
        what=row["what"],
        actor=Actor(row["actor_kind"], row["actor_id"], row["actor_name"]),
        note=row["reason"],
        from_state=OrderStatus(row["from_status"]) if row["from_status"] else None,
        to_state=OrderStatus(row["to_status"]) if row["to_status"] else None,
        event_type=row["event_type"],
        event_id=row["event_id"],
        details=row["details"],
    )


async def has_event(conn: Connection, order_id: str, event_type: str) -> bool:
    """Whether the order's timeline holds an entry told by an event of this type."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM order_timeline WHERE order_id = $1 AND event_type = $2)",
            order_id,
            event_type,
        )
    )
