"""PostgreSQL adapter for stock levels, the stock ledger and reservations (schema `inventory`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from orderguard.services.inventory.domain import (
    LedgerEntry,
    ReservationLine,
    StockKey,
    StockLevel,
)
from orderguard.shared.db import Connection


def _level(row: Any) -> StockLevel:
    return StockLevel(
        sku=row["sku"],
        warehouse=row["warehouse"],
        on_hand=row["on_hand"],
        reserved=row["reserved"],
        low_stock_threshold=row["low_stock_threshold"],
    )


async def lock_levels(conn: Connection, keys: Iterable[StockKey]) -> dict[StockKey, StockLevel]:
    """Stock rows for these keys, locked for the rest of the transaction."""
    keys = sorted(set(keys))  # one lock order for everyone: no deadlocks between writers
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT sku, warehouse, on_hand, reserved, low_stock_threshold FROM stock"
        " WHERE (sku, warehouse) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
        " ORDER BY sku, warehouse FOR UPDATE",
        [sku for sku, _ in keys],
        [warehouse for _, warehouse in keys],
    )
    return {(row["sku"], row["warehouse"]): _level(row) for row in rows}


async def levels_of_sku(conn: Connection, sku: str) -> list[tuple[StockLevel, datetime]]:
    """Every warehouse's level of a SKU, with when it last changed."""
    rows = await conn.fetch(
        "SELECT sku, warehouse, on_hand, reserved, low_stock_threshold, updated_at FROM stock"
        " WHERE sku = $1 ORDER BY warehouse",
        sku,
    )
    return [(_level(row), row["updated_at"]) for row in rows]


async def save_levels(conn: Connection, levels: Iterable[StockLevel]) -> None:
    """Every level in one statement (the keys are distinct: a stock book's changed rows)."""
    levels = list(levels)
    if not levels:
        return
    await conn.execute(
        "INSERT INTO stock (sku, warehouse, on_hand, reserved, low_stock_threshold)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::int[])"
        " ON CONFLICT (sku, warehouse) DO UPDATE SET on_hand = EXCLUDED.on_hand,"
        " reserved = EXCLUDED.reserved, low_stock_threshold = EXCLUDED.low_stock_threshold,"
        " updated_at = now()",
        [s.sku for s in levels],
        [s.warehouse for s in levels],
        [s.on_hand for s in levels],
        [s.reserved for s in levels],
        [s.low_stock_threshold for s in levels],
    )


# -- the ledger ------------------------------------------------------------------------------


async def append_ledger(conn: Connection, entries: Iterable[LedgerEntry], at: datetime) -> None:
    """The entries in one statement, their ids in the order given."""
    entries = list(entries)
    if not entries:
        return
    await conn.execute(
        "INSERT INTO stock_ledger (sku, warehouse, movement, on_hand_delta, reserved_delta,"
        " on_hand_after, reserved_after, order_id, reference, actor, note, recorded_at)"
        " SELECT sku, warehouse, movement, on_hand_delta, reserved_delta, on_hand_after,"
        " reserved_after, order_id, reference, actor, note, $12 FROM unnest($1::text[],"
        " $2::text[], $3::text[], $4::int[], $5::int[], $6::int[], $7::int[], $8::text[],"
        " $9::text[], $10::text[], $11::text[]) WITH ORDINALITY AS e(sku, warehouse, movement,"
        " on_hand_delta, reserved_delta, on_hand_after, reserved_after, order_id, reference,"
        " actor, note, n) ORDER BY n",
        [e.sku for e in entries],
        [e.warehouse for e in entries],
        [e.movement for e in entries],
        [e.on_hand_delta for e in entries],
        [e.reserved_delta for e in entries],
        [e.on_hand_after for e in entries],
        [e.reserved_after for e in entries],
        [e.order_id for e in entries],
        [e.reference for e in entries],
        [e.actor for e in entries],
        [e.note for e in entries],
        at,
    )


async def ledger_sums(conn: Connection, sku: str, warehouse: str) -> tuple[int, int]:
    """(on hand, reserved) as the ledger of a SKU in a warehouse sums them."""
    row = await conn.fetchrow(
        "SELECT coalesce(sum(on_hand_delta), 0) AS on_hand,"
        " coalesce(sum(reserved_delta), 0) AS reserved"
        " FROM stock_ledger WHERE sku = $1 AND warehouse = $2",
        sku,
        warehouse,
    )
    assert row is not None
    return int(row["on_hand"]), int(row["reserved"])


async def ledger_page(
    conn: Connection, sku: str, warehouse: str, before: int | None, limit: int
) -> list[Any]:
    """Ledger rows newest first, those with an id below `before` (None: from the newest)."""
    return await conn.fetch(
        "SELECT id, movement, on_hand_delta, reserved_delta, on_hand_after, reserved_after,"
        " order_id, reference, actor, note, recorded_at FROM stock_ledger"
        " WHERE sku = $1 AND warehouse = $2 AND ($3::bigint IS NULL OR id < $3)"
        " ORDER BY id DESC LIMIT $4",
        sku,
        warehouse,
        before,
        limit,
    )


# -- reservations ----------------------------------------------------------------------------


async def reservations_of(
    conn: Connection, order_ids: Iterable[str], lock: bool = True
) -> dict[str, list[ReservationLine]]:
    rows = await conn.fetch(
        "SELECT order_id, sku, warehouse, quantity, state FROM reservations"
        " WHERE order_id = ANY($1::text[]) ORDER BY order_id, sku, warehouse"
        + (" FOR UPDATE" if lock else ""),
        sorted(set(order_ids)),
    )
    found: dict[str, list[ReservationLine]] = {}
    for row in rows:
        found.setdefault(row["order_id"], []).append(
            ReservationLine(
                row["order_id"], row["sku"], row["warehouse"], row["quantity"], row["state"]
            )
        )
    return found


async def save_reservations(conn: Connection, lines: Iterable[ReservationLine]) -> None:
    """The lines in one statement. A line changed twice in a batch (reserved, then committed)
    is written once: inserted with its first quantity, in its last state."""
    first_quantity: dict[tuple[str, str, str], int] = {}
    last_state: dict[tuple[str, str, str], str] = {}
    for r in lines:
        key = (r.order_id, r.sku, r.warehouse)
        first_quantity.setdefault(key, r.quantity)
        last_state[key] = r.state
    if not last_state:
        return
    await conn.execute(
        "INSERT INTO reservations (order_id, sku, warehouse, quantity, state)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[])"
        " ON CONFLICT (order_id, sku, warehouse) DO UPDATE SET state = EXCLUDED.state,"
        " updated_at = now()",
        [order_id for order_id, _, _ in last_state],
        [sku for _, sku, _ in last_state],
        [warehouse for _, _, warehouse in last_state],
        list(first_quantity.values()),
        list(last_state.values()),
    )
