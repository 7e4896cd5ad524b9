"""PostgreSQL adapter for stock levels and reservations (schema `inventory`)."""

from __future__ import annotations

from collections.abc import Iterable

from asyncpg.pool import PoolConnectionProxy

from orderguard.services.inventory.domain import StockKey, StockLevel

Connection = PoolConnectionProxy


def _level(row: object) -> StockLevel:
    return StockLevel(
        sku=row["sku"],  # type: ignore[index]
        warehouse=row["warehouse"],  # type: ignore[index]
        on_hand=row["on_hand"],  # type: ignore[index]
        reserved=row["reserved"],  # type: ignore[index]
        low_stock_threshold=row["low_stock_threshold"],  # type: ignore[index]
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


async def levels_of_sku(conn: Connection, sku: str) -> list[StockLevel]:
    rows = await conn.fetch(
        "SELECT sku, warehouse, on_hand, reserved, low_stock_threshold FROM stock WHERE sku = $1 ORDER BY warehouse",
        sku,
    )
    return [_level(row) for row in rows]


async def save_levels(conn: Connection, levels: Iterable[StockLevel]) -> None:
    await conn.executemany(
        "INSERT INTO stock (sku, warehouse, on_hand, reserved, low_stock_threshold) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (sku, warehouse) DO UPDATE SET on_hand = EXCLUDED.on_hand, reserved = EXCLUDED.reserved,"
        " low_stock_threshold = EXCLUDED.low_stock_threshold, updated_at = now()",
        [(s.sku, s.warehouse, s.on_hand, s.reserved, s.low_stock_threshold) for s in levels],
    )


ReservationRow = tuple[str, str, str, int, str]  # order_id, sku, warehouse, quantity, state


async def reservations_of(
    conn: Connection, order_ids: Iterable[str]
) -> dict[str, list[ReservationRow]]:
    rows = await conn.fetch(
        "SELECT order_id, sku, warehouse, quantity, state FROM reservations"
        " WHERE order_id = ANY($1::text[]) ORDER BY order_id, sku, warehouse FOR UPDATE",
        sorted(set(order_ids)),
    )
    found: dict[str, list[ReservationRow]] = {}
    for row in rows:
        found.setdefault(row["order_id"], []).append(
            (row["order_id"], row["sku"], row["warehouse"], row["quantity"], row["state"])
        )
    return found


async def save_reservations(conn: Connection, reservations: Iterable[ReservationRow]) -> None:
    await conn.executemany(
        "INSERT INTO reservations (order_id, sku, warehouse, quantity, state) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (order_id, sku, warehouse) DO UPDATE SET state = EXCLUDED.state, updated_at = now()",
        list(reservations),
    )
