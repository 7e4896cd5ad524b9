"""A detector keyed across partitions (refund.repeated: by customer, on a topic keyed by case)
run by two workers at once: each batch locks its keys and reads their state afresh, so neither
worker's cache hides the other's refunds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
from testkit import engine_pool

from orderguard.services.aftersales.rules import RepeatedRefunds
from orderguard.shared.detection.config import RuleConfig
from orderguard.shared.detection.consumer import DetectorConsumer
from orderguard.shared.detection.deadlines import PartitionClocks
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.aftersales import RefundedLine, RefundIssued
from orderguard.shared.settings import Settings
from orderguard.shared.uow import UnitOfWork

SCHEMA = "sharedkeys"
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    async with engine_pool(settings, SCHEMA) as pool:
        yield pool


def worker() -> DetectorConsumer:
    return DetectorConsumer(
        RepeatedRefunds(RuleConfig.of(RepeatedRefunds, threshold=3)),
        topics=["aftersales.events"],
        anomalies_topic="anomalies.detected",
        service="test",
        clocks=PartitionClocks(timedelta(0), timedelta(seconds=3600)),
    )


def refund(n: int, partition: int) -> Event:
    data = RefundIssued(
        case_id=f"case-{n}",
        refund_id=f"rf-{n}",
        order_id=f"ord-{n}",
        customer_id="cust-1",
        channel="web",
        lines=[RefundedLine(sku="MUG", quantity=1, amount=Decimal("9.90"))],
        amount=Decimal("9.90"),
        reason="test",
        issued_at=T0 + timedelta(days=n),
    )
    envelope = Envelope(
        type="refund.issued.v1",
        source="/test",
        subject=data.case_id,
        time=data.issued_at,
        data=data.model_dump(mode="json"),
    )
    return Event(envelope, data, "aftersales.events", partition, n)


async def fired(pool: asyncpg.Pool, handler: DetectorConsumer, event: Event) -> int:
    async with UnitOfWork(pool, SCHEMA) as uow:
        await handler.handle(uow, [event])
        count = len(uow.outbox)
        await uow.commit()
    return count


async def test_two_workers_count_one_customers_refunds_together(pool: asyncpg.Pool) -> None:
    first, second = worker(), worker()
    # Case 0 and 2 on partition 0 (first worker), case 1 on partition 1 (second worker).
    assert await fired(pool, first, refund(0, partition=0)) == 0
    assert await fired(pool, second, refund(1, partition=1)) == 0
    # With its cache alone the first worker would count 2 here, and stay quiet.
    assert await fired(pool, first, refund(2, partition=0)) == 1, "saw the other worker's refund"


async def test_state_read_under_lock_is_not_kept_after_the_batch(pool: asyncpg.Pool) -> None:
    # Read fresh every batch, a customer's state kept after it would only grow the process (one
    # entry per customer ever seen); the stored state still counts every refund.
    handler = worker()
    for n in range(3):
        fired_now = await fired(pool, handler, refund(n, partition=n % 2))
        assert handler._cache == {}
    assert fired_now == 1
