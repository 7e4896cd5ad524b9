"""PostgreSQL adapter for orders, their lines and their timeline (schema `orders`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from orderguard.services.order.domain import (
    Actor,
    Address,
    Line,
    Order,
    OrderStatus,
    TimelineEntry,
)

Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy  # what UnitOfWork.conn is


async def add(conn: Connection, order: Order) -> None:
    await conn.execute(
        "INSERT INTO orders (order_id, customer_id, channel, warehouse, status, phone,"
        " shipping_address, total_amount, placed_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
    )
    await conn.executemany(
        "INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price)"
        " VALUES ($1, $2, $3, $4, $5)",
        [
            (order.order_id, n, line.sku, line.quantity, line.unit_price)
            for n, line in enumerate(order.lines, start=1)
        ],
    )


async def get(conn: Connection, order_id: str, for_update: bool = False) -> Order | None:
    """The order, or None; with `for_update` its row stays locked until the transaction ends."""
    row = await conn.fetchrow(
        "SELECT order_id, customer_id, channel, warehouse, status, phone, shipping_address,"
        " placed_at, updated_at FROM orders WHERE order_id = $1"
        + (" FOR UPDATE" if for_update else ""),
        order_id,
    )
    if row is None:
        return None
    lines = await conn.fetch(
        "SELECT sku, quantity, unit_price FROM order_lines WHERE order_id = $1 ORDER BY line_no",
        order_id,
    )
    return Order(
        order_id=row["order_id"],
        customer_id=row["customer_id"],
        phone=row["phone"],
        address=Address(**row["shipping_address"]),
        lines=tuple(
            Line(sku=line["sku"], quantity=line["quantity"], unit_price=line["unit_price"])
            for line in lines
        ),
        channel=row["channel"],
        warehouse=row["warehouse"],
        status=OrderStatus(row["status"]),
        placed_at=row["placed_at"],
        updated_at=row["updated_at"],
    )


async def save_status(conn: Connection, order: Order) -> None:
    await conn.execute(
        "UPDATE orders SET status = $2, updated_at = $3 WHERE order_id = $1",
        order.order_id,
        str(order.status),
        order.updated_at,
    )


async def known(conn: Connection, order_ids: Iterable[str]) -> set[str]:
    """Which of these ids are orders of ours (events may name orders placed elsewhere)."""
    rows = await conn.fetch(
        "SELECT order_id FROM orders WHERE order_id = ANY($1::text[])", sorted(set(order_ids))
    )
    return {row["order_id"] for row in rows}


async def record(conn: Connection, entries: Iterable[tuple[str, TimelineEntry]]) -> None:
    """Append (order id, entry) pairs; an entry whose event the order already has is skipped."""
    await conn.executemany(
        "INSERT INTO order_timeline (order_id, at, what, actor_kind, actor_id, reason,"
        " from_status, to_status, event_type, event_id, details)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT (order_id, event_id) DO NOTHING",
        [
            (
                order_id,
                entry.at,
                entry.what,
                entry.actor.kind,
                entry.actor.id,
                entry.reason,
                str(entry.from_status) if entry.from_status else None,
                str(entry.to_status) if entry.to_status else None,
                entry.event_type,
                entry.event_id,
                dict(entry.details),
            )
            for order_id, entry in entries
        ],
    )


async def timeline(conn: Connection, order_id: str) -> list[TimelineEntry]:
    rows = await conn.fetch(
        "SELECT at, what, actor_kind, actor_id, reason, from_status, to_status, event_type,"
        " event_id, details FROM order_timeline WHERE order_id = $1 ORDER BY at, id",
        order_id,
    )
    return [_entry(row) for row in rows]


def _entry(row: Any) -> TimelineEntry:
    return TimelineEntry(
        at=row["at"],
        what=row["what"],
        actor=Actor(row["actor_kind"], row["actor_id"]),
        reason=row["reason"],
        from_status=OrderStatus(row["from_status"]) if row["from_status"] else None,
        to_status=OrderStatus(row["to_status"]) if row["to_status"] else None,
        event_type=row["event_type"],
        event_id=row["event_id"],
        details=row["details"],
    )
