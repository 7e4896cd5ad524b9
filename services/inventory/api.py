"""HTTP API of the inventory service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from orderguard.services.inventory import repository
from orderguard.services.inventory.domain import StockLevel
from orderguard.services.inventory.handlers import Inventory
from orderguard.shared.detector_config import RuleConfig
from orderguard.shared.http import Problem, require_scope
from orderguard.shared.runtime import Runtime
from orderguard.shared.uow import UnitOfWork

SKU = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
WAREHOUSE = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")


class StockUpdate(BaseModel):
    on_hand: int = Field(ge=0, description="Units physically in the warehouse")
    low_stock_threshold: int | None = Field(
        default=None,
        ge=0,
        description="stock.low fires when available falls below this; omit for the default",
    )


class StockView(BaseModel):
    sku: str
    warehouse: str
    on_hand: int
    reserved: int
    available: int
    low_stock_threshold: int | None
    effective_threshold: int

    @classmethod
    def of(cls, level: StockLevel, configured: RuleConfig[Any]) -> StockView:
        """`configured` is stock.low's configuration: the file's threshold for this SKU and
        warehouse applies unless the SKU set its own."""
        return cls(
            sku=level.sku,
            warehouse=level.warehouse,
            on_hand=level.on_hand,
            reserved=level.reserved,
            available=level.available,
            low_stock_threshold=level.low_stock_threshold,
            effective_threshold=(
                level.low_stock_threshold
                if level.low_stock_threshold is not None
                else configured.params_for(
                    {"sku": level.sku, "warehouse": level.warehouse}
                ).threshold
            ),
        )


class ReservationView(BaseModel):
    order_id: str
    sku: str
    warehouse: str
    quantity: int
    state: str


def build_router(runtime: Runtime, configured: RuleConfig[Any]) -> APIRouter:
    """`configured`: stock.low's configuration, to show each SKU's effective threshold."""
    router = APIRouter(tags=["inventory"])

    @router.put(
        "/stock/{sku}/{warehouse}",
        dependencies=[Depends(require_scope("inventory:write"))],
        response_model=StockView,
    )
    async def set_stock(
        update: StockUpdate, sku: str = SKU, warehouse: str = WAREHOUSE
    ) -> StockView:
        """Set on-hand stock (a count) and the SKU's low-stock threshold in one warehouse."""
        async with UnitOfWork(runtime.pool, runtime.schema) as uow:
            inventory = Inventory(uow, runtime.topics.inventory)
            await inventory.load({(sku, warehouse)})
            level = inventory.set_stock(sku, warehouse, update.on_hand, update.low_stock_threshold)
            await inventory.save()
            await uow.commit()
        return StockView.of(level, configured)

    @router.get(
        "/stock/{sku}",
        dependencies=[Depends(require_scope("inventory:read"))],
        response_model=list[StockView],
    )
    async def stock_of_sku(sku: str = SKU) -> list[StockView]:
        async with runtime.pool.acquire() as conn:
            levels = await repository.levels_of_sku(conn, sku)
        if not levels:
            raise Problem(404, "not-found", "Unknown SKU", f"No stock recorded for SKU {sku}.")
        return [StockView.of(level, configured) for level in levels]

    @router.get(
        "/reservations/{order_id}",
        dependencies=[Depends(require_scope("inventory:read"))],
        response_model=list[ReservationView],
    )
    async def reservations_of_order(order_id: str) -> list[ReservationView]:
        async with runtime.pool.acquire() as conn:
            rows = (await repository.reservations_of(conn, [order_id])).get(order_id, [])
        return [
            ReservationView(order_id=o, sku=s, warehouse=w, quantity=q, state=st)
            for o, s, w, q, st in rows
        ]

    return router
