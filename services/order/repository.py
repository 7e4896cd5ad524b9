"""PostgreSQL adapter for orders, their lines and their timeline (schema `orders`).

Each use case's reads and writes are as few statements as the data allows: an order comes with
its lines (and, to read it whole, its timeline) in one statement, and a new order is stored
with its lines and first timeline entries in one statement."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson

from orderguard.services.order.domain import (
    Actor,
    Address,
    HoldReason,
    Line,
    Order,
    OrderStatus,
    Priority,
    TimelineEntry,
    customer_type_of,
)
from orderguard.shared.db import Connection
from orderguard.shared.uow import Riders

_COLUMNS = (
    "order_id, customer_id, channel, warehouse, status, phone, shipping_address, placed_at,"
    " updated_at, member_level, express, priority_score, priority_level, payment_due_at,"
    " payment_id, paid_amount, promised_delivery_by, delivered_at, held_from, hold_reason,"
    " hold_note, hold_release_at, customer_type,"
    " ARRAY(SELECT ROW(l.sku, l.quantity, l.unit_price) FROM order_lines l"
    " WHERE l.order_id = orders.order_id ORDER BY l.line_no) AS lines"
)

# Timeline rows from twelve parallel arrays starting at parameter ${0}, inserted in the order
# given (ids follow it); an entry whose event the order already has is skipped.
_INSERT_TIMELINE = (
    "INSERT INTO order_timeline (order_id, at, what, actor_kind, actor_id, actor_name, reason,"
    " from_status, to_status, event_type, event_id, details)"
    " SELECT order_id, at, what, actor_kind, actor_id, actor_name, reason, from_status,"
    " to_status, event_type, event_id, details::jsonb FROM unnest(${0}::text[],"
    " ${1}::timestamptz[], ${2}::text[], ${3}::text[], ${4}::text[], ${5}::text[],"
    " ${6}::text[], ${7}::text[], ${8}::text[], ${9}::text[], ${10}::text[], ${11}::text[])"
    " WITH ORDINALITY AS t (order_id, at, what, actor_kind, actor_id, actor_name, reason,"
    " from_status, to_status, event_type, event_id, details, n)"
    " ORDER BY n ON CONFLICT (order_id, event_id) DO NOTHING"
)
_TIMELINE_ARRAYS = 12

_TIMELINE_COLUMNS = (
    "at, what, actor_kind, actor_id, actor_name, reason, from_status, to_status, event_type,"
    " event_id, details::text"
)


def _insert_timeline(first: int) -> str:
    return _INSERT_TIMELINE.format(*range(first, first + _TIMELINE_ARRAYS))


async def add(
    conn: Connection, order: Order, timeline: Iterable[TimelineEntry], riders: Riders
) -> None:
    """Store a new order with its lines, its first timeline entries and what rides along (the
    events it caused, an idempotent answer) in one statement. Its customer type
    (`customer_type_of`) depends on whether the customer ordered here before: the same
    statement looks, and `order` gets the type stored."""
    ridden, selected, rider_args = riders.clauses(first=29 + _TIMELINE_ARRAYS)
    order.customer_type = await conn.fetchval(
        "WITH placed AS (INSERT INTO orders (order_id, customer_id, channel, warehouse, status,"
        " phone, shipping_address, total_amount, placed_at, updated_at, member_level, express,"
        " priority_score, priority_level, payment_due_at, payment_id, paid_amount,"
        " promised_delivery_by, delivered_at, held_from, hold_reason, hold_note,"
        " hold_release_at, customer_type)"
        " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,"
        " $18, $19, $20, $21, $22, $23,"
        " CASE WHEN EXISTS (SELECT 1 FROM orders WHERE customer_id = $2) THEN $25 ELSE $24 END"
        " RETURNING customer_type),"
        " lines AS (INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price)"
        " SELECT $1, n, sku, quantity, unit_price"
        " FROM unnest($26::text[], $27::integer[], $28::numeric[])"
        " WITH ORDINALITY AS l (sku, quantity, unit_price, n)),"
        f" timeline AS ({_insert_timeline(29)}){ridden}"
        f" SELECT customer_type{selected} FROM placed",
        order.order_id,
        order.customer_id,
        order.channel,
        order.warehouse,
        str(order.status),
        order.phone,
        order.address.as_dict(),
        order.total_amount,
        order.placed_at,
        order.updated_at,
        order.member_level,
        order.express,
        order.priority.score,
        order.priority.level,
        order.payment_due_at,
        *_changeable(order),
        customer_type_of(order.member_level, earlier_orders=0),
        customer_type_of(order.member_level, earlier_orders=1),
        [line.sku for line in order.lines],
        [line.quantity for line in order.lines],
        [line.unit_price for line in order.lines],
        *_timeline_arrays((order.order_id, entry) for entry in timeline),
        *rider_args,
    )


def _changeable(order: Order) -> tuple[Any, ...]:
    """What transitions change besides status and times: payment, delivery, hold."""
    return (
        order.payment_id,
        order.paid_amount,
        order.promised_delivery_by,
        order.delivered_at,
        str(order.held_from) if order.held_from else None,
        str(order.hold_reason) if order.hold_reason else None,
        order.hold_note,
        order.hold_release_at,
    )


async def get(conn: Connection, order_id: str, for_update: bool = False) -> Order | None:
    """The order, or None; with `for_update` its row stays locked until the transaction ends."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM orders WHERE order_id = $1"
        + (" FOR UPDATE" if for_update else ""),
        order_id,
    )
    return None if row is None else _order(row)


async def get_with_timeline(
    conn: Connection, order_id: str
) -> tuple[Order, list[TimelineEntry]] | None:
    """The order and its timeline, or None: one statement, so one round trip and one snapshot."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, ARRAY(SELECT ROW({_TIMELINE_COLUMNS}) FROM order_timeline t"
        " WHERE t.order_id = orders.order_id ORDER BY t.at, t.id) AS timeline"
        " FROM orders WHERE order_id = $1",
        order_id,
    )
    if row is None:
        return None
    return _order(row), [_entry(*entry) for entry in row["timeline"]]


def _order(row: Any) -> Order:
    return Order(
        order_id=row["order_id"],
        customer_id=row["customer_id"],
        phone=row["phone"],
        address=Address(**row["shipping_address"]),
        lines=tuple(
            Line(sku=sku, quantity=quantity, unit_price=unit_price)
            for sku, quantity, unit_price in row["lines"]
        ),
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


async def save(conn: Connection, orders: Iterable[Order]) -> None:
    """Store what transitions changed (status, hold, payment, delivery), in one statement."""
    rows = [
        (
            order.order_id,
            str(order.status),
            order.updated_at,
            order.payment_due_at,
            *_changeable(order),
        )
        for order in {order.order_id: order for order in orders}.values()
    ]
    if not rows:
        return
    await conn.execute(
        "UPDATE orders o SET status = c.status, updated_at = c.updated_at,"
        " payment_due_at = c.payment_due_at, payment_id = c.payment_id,"
        " paid_amount = c.paid_amount, promised_delivery_by = c.promised_delivery_by,"
        " delivered_at = c.delivered_at, held_from = c.held_from, hold_reason = c.hold_reason,"
        " hold_note = c.hold_note, hold_release_at = c.hold_release_at"
        " FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[],"
        " $6::numeric[], $7::timestamptz[], $8::timestamptz[], $9::text[], $10::text[],"
        " $11::text[], $12::timestamptz[]) AS c(order_id, status, updated_at, payment_due_at,"
        " payment_id, paid_amount, promised_delivery_by, delivered_at, held_from, hold_reason,"
        " hold_note, hold_release_at) WHERE o.order_id = c.order_id",
        *(list(column) for column in zip(*rows, strict=True)),
    )


async def get_many(conn: Connection, order_ids: Iterable[str]) -> dict[str, Order]:
    """Our orders among these ids, locked for update (events may name orders placed elsewhere)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM orders WHERE order_id = ANY($1::text[])"
        " ORDER BY order_id FOR UPDATE",
        sorted(set(order_ids)),
    )
    return {row["order_id"]: _order(row) for row in rows}


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
    return [_order(row) for row in rows]


async def first_times(conn: Connection, facts: Sequence[tuple[str, str, str]]) -> list[bool]:
    """Record payment facts (order id, payment id, outcome) in one statement; for each, False
    when its order already had it (under any event id, or earlier in `facts`)."""
    if not facts:
        return []
    rows = await conn.fetch(
        "INSERT INTO order_payments (order_id, payment_id, outcome)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING"
        " RETURNING order_id, payment_id, outcome",
        *(list(column) for column in zip(*facts, strict=True)),
    )
    new = {(row["order_id"], row["payment_id"], row["outcome"]) for row in rows}
    firsts = []
    for fact in facts:
        firsts.append(fact in new)
        new.discard(fact)
    return firsts


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
    return [_order(row) for row in rows]


async def known(conn: Connection, order_ids: Iterable[str]) -> set[str]:
    """Which of these ids are orders of ours (events may name orders placed elsewhere)."""
    rows = await conn.fetch(
        "SELECT order_id FROM orders WHERE order_id = ANY($1::text[])", sorted(set(order_ids))
    )
    return {row["order_id"] for row in rows}


async def record(conn: Connection, entries: Iterable[tuple[str, TimelineEntry]]) -> None:
    """Append (order id, entry) pairs in one statement; an entry whose event the order already
    has is skipped."""
    arrays = _timeline_arrays(entries)
    if arrays[0]:
        await conn.execute(_insert_timeline(1), *arrays)


def _timeline_arrays(entries: Iterable[tuple[str, TimelineEntry]]) -> list[list[Any]]:
    """(order id, entry) pairs as the parallel arrays of `_INSERT_TIMELINE`."""
    rows = [
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
            orjson.dumps(dict(entry.details)).decode(),
        )
        for order_id, entry in entries
    ]
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * _TIMELINE_ARRAYS


async def timeline(conn: Connection, order_id: str) -> list[TimelineEntry]:
    rows = await conn.fetch(
        f"SELECT {_TIMELINE_COLUMNS} FROM order_timeline WHERE order_id = $1 ORDER BY at, id",
        order_id,
    )
    return [_entry(*row) for row in rows]


def _entry(
    at: datetime,
    what: str,
    actor_kind: str,
    actor_id: str,
    actor_name: str | None,
    reason: str | None,
    from_status: str | None,
    to_status: str | None,
    event_type: str | None,
    event_id: str | None,
    details: str,
) -> TimelineEntry:
    return TimelineEntry(
        at=at,
        what=what,
        actor=Actor(actor_kind, actor_id, actor_name),
        note=reason,
        from_state=OrderStatus(from_status) if from_status else None,
        to_state=OrderStatus(to_status) if to_status else None,
        event_type=event_type,
        event_id=event_id,
        details=orjson.loads(details),
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
