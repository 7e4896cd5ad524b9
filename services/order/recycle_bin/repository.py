"""PostgreSQL adapter of the recycle bin (schema `orders`): entries, their causes, purges,
the listing and the counts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from orderguard.services.order.domain import Actor
from orderguard.services.order.recycle_bin.domain import (
    BinEntry,
    BinState,
    Category,
    Cause,
    OrderFacts,
)
from orderguard.services.order.repository import Connection

_ENTRY_COLUMNS = (
    "entry_id, order_id, state, category, reason, case_id, moved_by, moved_at, last_cause_at,"
    " order_status, channel, amount, closed_by, closed_reason, restored_at, archived_at, purged_at"
)


async def lock_orders(conn: Connection, order_ids: Iterable[str]) -> dict[str, OrderFacts]:
    """Lock these orders (in id order, so concurrent batches cannot deadlock) and return the
    ones we know. NO KEY UPDATE: the timeline's foreign key checks still pass alongside."""
    rows = await conn.fetch(
        "SELECT order_id, status, channel, total_amount FROM orders"
        " WHERE order_id = ANY($1::text[]) ORDER BY order_id FOR NO KEY UPDATE",
        sorted(set(order_ids)),
    )
    return {
        row["order_id"]: OrderFacts(
            row["order_id"], row["status"], row["channel"], row["total_amount"]
        )
        for row in rows
    }


def _entry(row: Any, causes: list[Cause]) -> BinEntry:
    return BinEntry(
        entry_id=row["entry_id"],
        order_id=row["order_id"],
        state=BinState(row["state"]),
        category=Category(row["category"]),
        reason=row["reason"],
        case_id=row["case_id"],
        moved_by=row["moved_by"],
        moved_at=row["moved_at"],
        last_cause_at=row["last_cause_at"],
        order_status=row["order_status"],
        channel=row["channel"],
        amount=row["amount"],
        causes=causes,
        closed_by=row["closed_by"],
        closed_reason=row["closed_reason"],
        restored_at=row["restored_at"],
        archived_at=row["archived_at"],
        purged_at=row["purged_at"],
    )


def _cause(row: Any) -> Cause:
    kind, _, actor_id = row["actor"].partition(":")
    return Cause(
        key=row["cause_key"],
        category=Category(row["category"]),
        reason=row["reason"],
        actor=Actor(kind, actor_id, row["actor_name"]),
        at=row["at"],
        case_id=row["case_id"],
        event_type=row["event_type"],
        event_id=row["event_id"],
    )


async def _with_causes(conn: Connection, rows: Sequence[Any]) -> list[BinEntry]:
    causes: dict[str, list[Cause]] = {row["entry_id"]: [] for row in rows}
    if causes:
        for row in await conn.fetch(
            "SELECT entry_id, cause_key, category, reason, actor, actor_name, case_id, at,"
            " event_type, event_id FROM recycle_bin_causes WHERE entry_id = ANY($1::text[])"
            " ORDER BY id",
            list(causes),
        ):
            causes[row["entry_id"]].append(_cause(row))
    return [_entry(row, causes[row["entry_id"]]) for row in rows]


async def open_entry(conn: Connection, order_id: str) -> BinEntry | None:
    rows = await conn.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM recycle_bin_entries WHERE order_id = $1 AND state = 'in_bin'",
        order_id,
    )
    entries = await _with_causes(conn, rows)
    return entries[0] if entries else None


async def seen_causes(conn: Connection, order_id: str) -> set[str]:
    rows = await conn.fetch(
        "SELECT cause_key FROM recycle_bin_causes WHERE order_id = $1", order_id
    )
    return {row["cause_key"] for row in rows}


async def entries_of_order(conn: Connection, order_id: str) -> list[BinEntry]:
    rows = await conn.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM recycle_bin_entries WHERE order_id = $1"
        " ORDER BY moved_at DESC, entry_id DESC",
        order_id,
    )
    return await _with_causes(conn, rows)


async def open_entries_of_case(conn: Connection, case_id: str, order_id: str) -> list[BinEntry]:
    """The entries in the bin that a case's closing archives: the case's own, or its order's."""
    rows = await conn.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM recycle_bin_entries"
        " WHERE state = 'in_bin' AND (case_id = $1 OR order_id = $2) ORDER BY entry_id",
        case_id,
        order_id,
    )
    return await _with_causes(conn, rows)


async def add_entry(conn: Connection, entry: BinEntry) -> None:
    await conn.execute(
        f"INSERT INTO recycle_bin_entries ({_ENTRY_COLUMNS})"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        *_entry_values(entry),
    )


def _entry_values(entry: BinEntry) -> tuple[Any, ...]:
    return (
        entry.entry_id,
        entry.order_id,
        str(entry.state),
        str(entry.category),
        entry.reason,
        entry.case_id,
        entry.moved_by,
        entry.moved_at,
        entry.last_cause_at,
        entry.order_status,
        entry.channel,
        entry.amount,
        entry.closed_by,
        entry.closed_reason,
        entry.restored_at,
        entry.archived_at,
        entry.purged_at,
    )


async def save_entry(conn: Connection, entry: BinEntry) -> None:
    """Write what can change on an entry: its state, case, last cause and closing."""
    await conn.execute(
        "UPDATE recycle_bin_entries SET state = $2, case_id = $3, last_cause_at = $4,"
        " closed_by = $5, closed_reason = $6, restored_at = $7, archived_at = $8, purged_at = $9"
        " WHERE entry_id = $1",
        entry.entry_id,
        str(entry.state),
        entry.case_id,
        entry.last_cause_at,
        entry.closed_by,
        entry.closed_reason,
        entry.restored_at,
        entry.archived_at,
        entry.purged_at,
    )


async def add_cause(conn: Connection, entry: BinEntry, cause: Cause) -> None:
    await conn.execute(
        "INSERT INTO recycle_bin_causes (entry_id, order_id, cause_key, category, reason, actor,"
        " actor_name, case_id, at, event_type, event_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        entry.entry_id,
        entry.order_id,
        cause.key,
        str(cause.category),
        cause.reason,
        str(cause.actor),
        cause.actor.name,
        cause.case_id,
        cause.at,
        cause.event_type,
        cause.event_id,
    )


# -- due work (scheduled jobs) -------------------------------------------------------------


async def lock_quiet_entries(conn: Connection, before: datetime, limit: int) -> list[BinEntry]:
    """Entries in the bin without a case, with no new cause since `before`; locked with their
    orders, skipping rows another worker holds."""
    rows = await conn.fetch(
        f"SELECT {', '.join('e.' + c.strip() for c in _ENTRY_COLUMNS.split(','))}"
        " FROM recycle_bin_entries e JOIN orders o ON o.order_id = e.order_id"
        " WHERE e.state = 'in_bin' AND e.case_id IS NULL AND e.last_cause_at < $1"
        " ORDER BY e.last_cause_at LIMIT $2 FOR NO KEY UPDATE OF e, o SKIP LOCKED",
        before,
        limit,
    )
    return await _with_causes(conn, rows)


async def lock_entries_past_retention(
    conn: Connection, before: datetime, limit: int
) -> list[BinEntry]:
    """Archived entries archived before `before`, locked with their orders (SKIP LOCKED)."""
    rows = await conn.fetch(
        f"SELECT {', '.join('e.' + c.strip() for c in _ENTRY_COLUMNS.split(','))}"
        " FROM recycle_bin_entries e JOIN orders o ON o.order_id = e.order_id"
        " WHERE e.state = 'archived' AND e.archived_at < $1"
        " ORDER BY e.archived_at LIMIT $2 FOR NO KEY UPDATE OF e, o SKIP LOCKED",
        before,
        limit,
    )
    return await _with_causes(conn, rows)


async def purge_personal_data(
    conn: Connection, entry: BinEntry, fields: Sequence[str], now: datetime
) -> None:
    """Remove the order's phone and what locates a person; keep province and city, lines,
    amounts, channel and timeline. Stored copies of its requests and sent events go too."""
    await conn.execute(
        "UPDATE orders SET phone = '', shipping_address = jsonb_build_object("
        "'province', shipping_address->'province', 'city', shipping_address->'city',"
        " 'district', '', 'street', '', 'recipient', '', 'postal_code', NULL)"
        " WHERE order_id = $1",
        entry.order_id,
    )
    # The answer to POST /orders (kept for Idempotency-Key replays) shows the address.
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE route = 'POST /orders' AND response->>'order_id' = $1",
        entry.order_id,
    )
    # Sent copies of the order's events (order.placed.v1 carries phone and address).
    await conn.execute(
        "DELETE FROM outbox WHERE key = $1 AND sent_at IS NOT NULL", entry.order_id.encode()
    )
    await conn.execute(
        "INSERT INTO order_purges (order_id, entry_id, purged_at, purged_fields)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (order_id) DO UPDATE"
        " SET entry_id = EXCLUDED.entry_id, purged_at = EXCLUDED.purged_at",
        entry.order_id,
        entry.entry_id,
        now,
        list(fields),
    )


async def in_bin_by_category(conn: Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT category, count(*) AS n FROM recycle_bin_entries WHERE state = 'in_bin'"
        " GROUP BY category"
    )
    return {row["category"]: row["n"] for row in rows}


# -- listing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BinFilter:
    reason: str | None = None  # contained, case-insensitive
    categories: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    moved_from: datetime | None = None  # inclusive
    moved_to: datetime | None = None  # exclusive
    customer_type: str | None = None
    channel: str | None = None
    sku: str | None = None

    def where(self, args: list[Any]) -> str:
        """SQL conditions over entries `e` joined to orders `o`, appending their arguments."""

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        conditions = ["true"]
        if self.reason:
            conditions.append(f"strpos(lower(e.reason), lower({arg(self.reason)})) > 0")
        if self.categories:
            conditions.append(f"e.category = ANY({arg(list(self.categories))}::text[])")
        if self.states:
            conditions.append(f"e.state = ANY({arg(list(self.states))}::text[])")
        if self.moved_from:
            conditions.append(f"e.moved_at >= {arg(self.moved_from)}")
        if self.moved_to:
            conditions.append(f"e.moved_at < {arg(self.moved_to)}")
        if self.customer_type:
            conditions.append(f"coalesce(o.customer_type, 'regular') = {arg(self.customer_type)}")
        if self.channel:
            conditions.append(f"e.channel = {arg(self.channel)}")
        if self.sku:
            conditions.append(
                "EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = e.order_id"
                f" AND l.sku = {arg(self.sku)})"
            )
        return " AND ".join(conditions)


@dataclass(frozen=True, slots=True)
class ListedEntry:
    entry: BinEntry
    customer_type: str
    skus: list[str]


async def list_entries(
    conn: Connection,
    filters: BinFilter,
    limit: int,
    after: tuple[datetime, str] | None = None,
) -> list[ListedEntry]:
    """Entries newest first (moved_at, then entry id, descending); `after` is the last
    (moved_at, entry id) of the previous page."""
    args: list[Any] = []
    where = filters.where(args)
    if after is not None:
        args += [after[0], after[1]]
        where += f" AND (e.moved_at, e.entry_id) < (${len(args) - 1}, ${len(args)})"
    args.append(limit)
    rows = await conn.fetch(
        f"SELECT {', '.join('e.' + c.strip() for c in _ENTRY_COLUMNS.split(','))},"
        " coalesce(o.customer_type, 'regular') AS customer_type,"
        " (SELECT array_agg(DISTINCT l.sku ORDER BY l.sku) FROM order_lines l"
        "  WHERE l.order_id = e.order_id) AS skus"
        " FROM recycle_bin_entries e JOIN orders o ON o.order_id = e.order_id"
        f" WHERE {where} ORDER BY e.moved_at DESC, e.entry_id DESC LIMIT ${len(args)}",
        *args,
    )
    entries = await _with_causes(conn, rows)
    return [
        ListedEntry(entry, row["customer_type"], list(row["skus"] or []))
        for entry, row in zip(entries, rows, strict=True)
    ]


# -- counts --------------------------------------------------------------------------------

# group_by dimension -> SQL expression; `sku` counts per order line, so it joins the lines.
DIMENSIONS = {
    "category": "e.category",
    "reason": "e.reason",
    "channel": "e.channel",
    "week": "to_char(e.moved_at AT TIME ZONE 'UTC', 'IYYY-\"W\"IW')",
    "sku": "l.sku",
    "state": "e.state",
    "customer_type": "coalesce(o.customer_type, 'regular')",
}


@dataclass(frozen=True, slots=True)
class Group:
    key: dict[str, str]
    orders: int
    amount: Decimal


async def counts(conn: Connection, group_by: Sequence[str], filters: BinFilter) -> list[Group]:
    """Entries counted per combination of `group_by`, with their amount (yuan).

    Without sku: the amount is the orders' totals. With sku: the number of binned orders holding
    that SKU and the amount of their lines of it.
    """
    args: list[Any] = []
    where = filters.where(args)
    by_sku = "sku" in group_by
    expressions = [DIMENSIONS[name] for name in group_by]
    amount = "sum(l.quantity * l.unit_price)" if by_sku else "sum(e.amount)"
    join = " JOIN order_lines l ON l.order_id = e.order_id" if by_sku else ""
    select_keys = "".join(f"{expr} AS g{n}, " for n, expr in enumerate(expressions))
    positions = ", ".join(str(n + 1) for n in range(len(expressions)))
    grouping = f" GROUP BY {positions} ORDER BY {positions}" if expressions else ""
    rows = await conn.fetch(
        f"SELECT {select_keys}count(DISTINCT e.entry_id) AS orders,"
        f" coalesce({amount}, 0) AS amount"
        f" FROM recycle_bin_entries e JOIN orders o ON o.order_id = e.order_id{join}"
        f" WHERE {where}{grouping}",
        *args,
    )
    return [
        Group(
            key={name: row[f"g{n}"] for n, name in enumerate(group_by)},
            orders=row["orders"],
            amount=row["amount"],
        )
        for row in rows
    ]
