"""The baseline of the HTTP rows of `make bench`: the least an order door can do on this machine.

FastAPI + asyncpg, one process, uvicorn as installed: validate the order body with pydantic and
write the order row and an outbox row in one transaction; read an order back by id.

    ORDERGUARD_DATABASE_URL=postgresql://... python bench/baseline_app.py PORT
"""

from __future__ import annotations

import os
import sys
import uuid
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Literal

import asyncpg
import orjson
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field

SCHEMA = (
    "CREATE SCHEMA IF NOT EXISTS baseline; SET search_path = baseline;"
    " CREATE TABLE IF NOT EXISTS orders (id text PRIMARY KEY, body jsonb NOT NULL);"
    " CREATE TABLE IF NOT EXISTS outbox (id bigserial PRIMARY KEY, topic text, value bytea);"
)


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")
    province: str = Field(min_length=1, max_length=32)
    city: str = Field(min_length=1, max_length=32)
    district: str = Field(default="", max_length=32)
    street: str = Field(default="", max_length=200)
    recipient: str = Field(min_length=1, max_length=64)
    postal_code: str | None = Field(default=None, max_length=16)


class Line(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    quantity: int = Field(gt=0, le=100_000, strict=True)
    unit_price: Decimal = Field(ge=0, max_digits=12, decimal_places=2)


class PlaceOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:@-]+$")
    phone: str = Field(min_length=1, max_length=32)
    shipping_address: Address
    lines: list[Line] = Field(min_length=1, max_length=200)
    channel: Literal["web", "app", "mini_program", "marketplace", "pos"]
    warehouse: str = Field(default="main", min_length=1, max_length=64)


@asynccontextmanager
async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
    url = os.environ["ORDERGUARD_DATABASE_URL"]
    app.state.pool = await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=10,
        server_settings={"search_path": "baseline", "application_name": "orderguard-baseline"},
    )
    async with app.state.pool.acquire() as conn:
        await conn.execute(SCHEMA)
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


@app.post("/orders", status_code=201)
async def place(order: PlaceOrder) -> dict[str, str]:
    order_id = uuid.uuid4().hex
    body = order.model_dump_json()
    async with app.state.pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO orders VALUES ($1, $2::jsonb)", order_id, body)
        await conn.execute(
            "INSERT INTO outbox (topic, value) VALUES ('orders.events', $1)", body.encode()
        )
    return {"order_id": order_id, "status": "placed"}


@app.get("/orders/{order_id}")
async def read(order_id: str) -> dict[str, object]:
    row = await app.state.pool.fetchrow("SELECT body::text FROM orders WHERE id = $1", order_id)
    if row is None:
        raise HTTPException(404)
    return {"order_id": order_id, **orjson.loads(row[0])}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
