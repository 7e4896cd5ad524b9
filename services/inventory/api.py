"""HTTP API of the inventory service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from orderguard.services.inventory import handlers, repository
from orderguard.services.inventory.domain import StockLevel
from orderguard.services.inventory.rules import LowStock
from orderguard.shared.detection.config import RuleConfig, in_force
from orderguard.shared.errors import NotFound
from orderguard.shared.http import Caller, require_scope
from orderguard.shared.http.deps import Conn, RuntimeDep, Writes
from orderguard.shared.http.inputs import IDENTIFIER, RowId, Text, Units
from orderguard.shared.topics import Topics
from orderguard.shared.uow import UnitOfWork

Sku = Annotated[str, Path(min_length=1, max_length=64, pattern=IDENTIFIER)]
Warehouse = Annotated[str, Path(min_length=1, max_length=64, pattern=IDENTIFIER)]
LEDGER_PAGE_MAX = 500


class StockUpdate(BaseModel):
    on_hand: Units = Field(description="Units physically in the warehouse")
    low_stock_threshold: Units | None = Field(
        default=None,
        description="stock.low fires when available falls below this; omit for the default",
    )


class ThresholdUpdate(BaseModel):
    low_stock_threshold: Units | None = Field(
        description="The SKU's own threshold in this warehouse; null for the configured one"
    )


class ReceiptRequest(BaseModel):
    quantity: int = Field(gt=0, le=1_000_000, description="Units received into the warehouse")
    reference: Text | None = Field(
        default=None, max_length=100, description="The supplier's delivery or purchase order id"
    )
    note: Text | None = Field(default=None, max_length=500)


class CountRequest(BaseModel):
    counted_on_hand: int = Field(ge=0, le=10_000_000, description="Units found on the shelf")
    counted_by: Text = Field(
        min_length=1, max_length=100, description="Who counted, e.g. a clerk id"
    )
    note: Text | None = Field(default=None, max_length=500)


class StockView(BaseModel):
    sku: str
    warehouse: str
    on_hand: int
    reserved: int
    available: int
    low_stock_threshold: int | None = Field(description="The SKU's own threshold, if it set one")
    effective_threshold: int = Field(description="The threshold stock.low applies")
    threshold_source: Literal["sku", "configuration"] = Field(
        description="sku: its own (PUT); configuration: the detectors file (warehouse override"
        " or global default)"
    )
    hysteresis: int = Field(description="stock.low re-arms above effective_threshold + this")
    low: bool = Field(description="available is below the effective threshold")
    updated_at: datetime | None = None

    @classmethod
    def of(
        cls, level: StockLevel, configured: RuleConfig[Any], updated_at: datetime | None = None
    ) -> StockView:
        """`configured` is stock.low's configuration: the file's threshold for this SKU and
        warehouse applies unless the SKU set its own."""
        params = configured.params_for({"sku": level.sku, "warehouse": level.warehouse})
        own = level.low_stock_threshold
        threshold = own if own is not None else params.threshold
        return cls(
            sku=level.sku,
            warehouse=level.warehouse,
            on_hand=level.on_hand,
            reserved=level.reserved,
            available=level.available,
            low_stock_threshold=own,
            effective_threshold=threshold,
            threshold_source="sku" if own is not None else "configuration",
            hysteresis=params.hysteresis,
            low=level.available < threshold,
            updated_at=updated_at,
        )


class ReceiptView(BaseModel):
    receipt_id: str
    quantity: int
    reference: str | None
    stock: StockView


class CountView(BaseModel):
    count_id: str
    counted_on_hand: int
    expected_on_hand: int = Field(description="on_hand of the stock row before the count")
    ledger_on_hand: int = Field(description="Sum of the ledger's on-hand movements before it")
    difference: int = Field(description="counted_on_hand - expected_on_hand: the adjustment")
    stock: StockView


class LedgerEntryView(BaseModel):
    id: int
    movement: str
    on_hand_delta: int
    reserved_delta: int
    on_hand_after: int
    reserved_after: int
    order_id: str | None
    reference: str | None
    actor: str | None
    note: str | None
    recorded_at: datetime


class LedgerPage(BaseModel):
    sku: str
    warehouse: str
    entries: list[LedgerEntryView] = Field(description="Newest first")
    next_before: int | None = Field(
        description="Pass as `before` for the next (older) page; null on the last page"
    )


class ReservationView(BaseModel):
    order_id: str
    sku: str
    warehouse: str
    quantity: int
    state: str


def _unknown_stock(sku: str, warehouse: str) -> NotFound:
    return NotFound(
        "stock",
        f"{sku}@{warehouse}",
        f"No stock recorded for SKU {sku} in warehouse {warehouse}.",
        sku=sku,
        warehouse=warehouse,
    )


async def low_stock_config(runtime: RuntimeDep) -> RuleConfig[Any]:
    """stock.low's configuration: each SKU's effective threshold is shown from it."""
    return in_force(runtime).rule(LowStock.name)


async def topics_of(runtime: RuntimeDep) -> Topics:
    return runtime.topics


LowStockConfig = Annotated[RuleConfig[Any], Depends(low_stock_config)]
TopicsDep = Annotated[Topics, Depends(topics_of)]
Writer = Annotated[Caller, Depends(require_scope("inventory:write"))]
READ = [Depends(require_scope("inventory:read"))]

router = APIRouter(tags=["inventory"])


@router.put("/stock/{sku}/{warehouse}", response_model=StockView)
async def set_stock(
    update: StockUpdate,
    sku: Sku,
    warehouse: Warehouse,
    caller: Writer,
    writes: Writes,
    topics: TopicsDep,
    configured: LowStockConfig,
) -> StockView:
    """Set on-hand stock and the SKU's low-stock threshold in one warehouse (a
    `stock_set` movement in the ledger). For deliveries and counts prefer receipts and
    counts: they say what happened."""
    async with writes.unit_of_work() as uow:
        level = await handlers.set_stock(
            uow, topics, sku, warehouse, update.on_hand, update.low_stock_threshold, caller.name
        )
        await uow.commit()
    return StockView.of(level, configured)


@router.put("/stock/{sku}/{warehouse}/threshold", response_model=StockView)
async def set_threshold(
    update: ThresholdUpdate,
    sku: Sku,
    warehouse: Warehouse,
    caller: Writer,
    writes: Writes,
    topics: TopicsDep,
    configured: LowStockConfig,
) -> StockView:
    """Set (or with null, clear) the SKU's own low-stock threshold in one warehouse.
    Without one, the detectors file applies: its per-warehouse override, else its default."""
    async with writes.unit_of_work() as uow:
        level = await handlers.set_threshold(
            uow, topics, sku, warehouse, update.low_stock_threshold, caller.name
        )
        if level is None:
            raise _unknown_stock(sku, warehouse)
        await uow.commit()
    return StockView.of(level, configured)


@router.post(
    "/stock/{sku}/{warehouse}/receipts",
    status_code=201,
    response_model=ReceiptView,
    responses={201: {"headers": {"Location": {"schema": {"type": "string"}}}}},
)
async def receive_stock(
    request: ReceiptRequest,
    sku: Sku,
    warehouse: Warehouse,
    caller: Writer,
    writes: Writes,
    topics: TopicsDep,
    configured: LowStockConfig,
) -> JSONResponse:
    """Goods received into the warehouse: on hand grows by `quantity` (a `received`
    movement). Retry with the same Idempotency-Key: received once."""

    async def receive(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        receipt_id = f"rcv_{uuid.uuid4().hex}"
        note = " ".join(filter(None, [request.reference, request.note])) or None
        level = await handlers.receive_stock(
            uow, topics, sku, warehouse, request.quantity, receipt_id, caller.name, note
        )
        view = ReceiptView(
            receipt_id=receipt_id,
            quantity=request.quantity,
            reference=request.reference,
            stock=StockView.of(level, configured),
        )
        return 201, view.model_dump(mode="json")

    return await writes.once(request, receive, lambda _: f"/stock/{sku}/{warehouse}/ledger")


@router.post(
    "/stock/{sku}/{warehouse}/counts",
    status_code=201,
    response_model=CountView,
    responses={201: {"headers": {"Location": {"schema": {"type": "string"}}}}},
)
async def count_stock(
    request: CountRequest,
    sku: Sku,
    warehouse: Warehouse,
    writes: Writes,
    topics: TopicsDep,
    configured: LowStockConfig,
    _: Writer,
) -> JSONResponse:
    """A stock count: on hand becomes what was counted (an `adjusted` movement), and the
    count is published (inventory.counted.v1) with the balance and ledger sums it is
    checked against by inventory.inconsistent. Retry with the same Idempotency-Key."""

    async def count(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        level, counted = await handlers.count_stock(
            uow,
            topics,
            sku,
            warehouse,
            request.counted_on_hand,
            f"cnt_{uuid.uuid4().hex}",
            request.counted_by,
            request.note,
        )
        view = CountView(
            count_id=counted.count_id,
            counted_on_hand=counted.counted_on_hand,
            expected_on_hand=counted.expected_on_hand,
            ledger_on_hand=counted.ledger_on_hand,
            difference=counted.counted_on_hand - counted.expected_on_hand,
            stock=StockView.of(level, configured),
        )
        return 201, view.model_dump(mode="json")

    return await writes.once(request, count, lambda _: f"/stock/{sku}/{warehouse}/ledger")


@router.get("/stock/{sku}", dependencies=READ, response_model=list[StockView])
async def stock_of_sku(sku: Sku, conn: Conn, configured: LowStockConfig) -> list[StockView]:
    """The SKU in every warehouse, with the threshold in force and where it comes from."""
    levels = await repository.levels_of_sku(conn, sku)
    if not levels:
        raise NotFound("SKU", sku, f"No stock recorded for SKU {sku}.")
    return [StockView.of(level, configured, updated_at) for level, updated_at in levels]


@router.get("/stock/{sku}/{warehouse}/ledger", dependencies=READ, response_model=LedgerPage)
async def ledger_of_stock(
    sku: Sku,
    warehouse: Warehouse,
    conn: Conn,
    limit: Annotated[int, Query(ge=1, le=LEDGER_PAGE_MAX)] = 50,
    before: Annotated[RowId | None, Query(description="Entries older than this id")] = None,
) -> LedgerPage:
    """Every movement of a SKU in a warehouse, newest first, a page at a time."""
    rows = await repository.ledger_page(conn, sku, warehouse, before, limit + 1)
    if (
        not rows
        and before is None
        and not await conn.fetchval(
            "SELECT 1 FROM stock WHERE sku = $1 AND warehouse = $2", sku, warehouse
        )
    ):
        raise _unknown_stock(sku, warehouse)
    more = len(rows) > limit
    entries = [LedgerEntryView(**dict(row)) for row in rows[:limit]]
    return LedgerPage(
        sku=sku, warehouse=warehouse, entries=entries, next_before=entries[-1].id if more else None
    )


@router.get("/reservations/{order_id}", dependencies=READ, response_model=list[ReservationView])
async def reservations_of_order(
    order_id: Annotated[Text, Path(min_length=1, max_length=64)], conn: Conn
) -> list[ReservationView]:
    """The order's reservation lines: held, committed (shipped), released or failed."""
    lines = (await repository.reservations_of(conn, [order_id], lock=False)).get(order_id, [])
    return [
        ReservationView(
            order_id=r.order_id,
            sku=r.sku,
            warehouse=r.warehouse,
            quantity=r.quantity,
            state=r.state,
        )
        for r in lines
    ]
