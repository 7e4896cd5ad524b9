"""A unit of work, and all a use case hung on it, goes when the work is done: not at the next
garbage collection. Kept in a reference cycle, every request's unit waited for the collector,
and under load its collections paused the front door for 35-250 ms at a time."""

from __future__ import annotations

import gc
import weakref
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from testkit import engine_pool

from orderguard.shared.events.orders import OrderCancelled
from orderguard.shared.settings import Settings
from orderguard.shared.uow import UnitOfWork

SCHEMA = "uowlifetime"


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    async with engine_pool(settings, SCHEMA) as pool:
        yield pool


async def _work(pool: asyncpg.Pool, commit: bool) -> weakref.ref[UnitOfWork]:
    """A unit that begins its transaction, publishes an event and keeps a callback, as use
    cases do; a weak reference to it once its block is left."""
    async with UnitOfWork(pool, SCHEMA) as uow:
        await uow.conn.execute("SELECT 1")  # the first statement begins the transaction
        cancelled = OrderCancelled(
            order_id="ord_1", reason="test", cancelled_by="test", cancelled_at=datetime.now(UTC)
        )
        uow.publish("orders.events", cancelled, source="/test", subject="ord_1")
        uow.after_commit(lambda: None)
        if commit:
            await uow.commit()
    return weakref.ref(uow)


@pytest.mark.parametrize("commit", [True, False], ids=["committed", "rolled back"])
async def test_a_unit_of_work_is_freed_without_the_garbage_collector(
    pool: asyncpg.Pool, commit: bool
) -> None:
    gc.collect()
    gc.disable()  # only reference counting frees anything now
    try:
        unit = await _work(pool, commit)
        assert unit() is None, "the unit of work is kept alive by a reference cycle"
    finally:
        gc.enable()
    published = await pool.fetchval("SELECT count(*) FROM outbox")
    assert published == (1 if commit else 0)
