"""Retention keeps the tables that grow with traffic bounded, in small batches, while what they
are for still holds: a retried HTTP write within the window gets its first answer, a
re-sent event within the dedup window is dropped, a delivery in progress is kept.

Real embedded broker and PostgreSQL; the past is written straight into the tables (rows as old
as the traffic of last month would have left them), the present through the public doors.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from orderflow import order_body, payment, send, topic, wait_status
from testkit import wait_until

from orderguard.services.notifier.bootstrap import DEFINITION as NOTIFIER
from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared import metrics
from orderguard.shared.settings import RetentionSettings, Settings
from orderguard.shared.wiring import worker_group

OLD_ROWS = 3000
ORDER_WORKER = worker_group("order")  # the consumer group that applies the payments
BATCH = 500


def _fast_retention(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"retention": RetentionSettings(interval_s=0.2, batch_max=BATCH)}
    )


def _job_items(job: str) -> float:
    return float(metrics.JOB_ITEMS.labels(job=job)._value.get())


async def test_engine_tables_stay_bounded_and_dedup_and_idempotent_replies_hold(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER, settings_=_fast_retention(settings))
    await order.wait_assigned()
    pool = order.runtime.pool
    deleted_before = _job_items("retention.idempotency_keys") + _job_items(
        "retention.applied_events"
    )

    # Today's traffic: an order placed with an idempotency key, paid by one payment event.
    first = await order.client.post(
        "/orders", json=order_body(), headers={"Idempotency-Key": "k-1"}
    )
    assert first.status_code == 201, first.text
    order_id = first.json()["order_id"]
    paid = payment("succeeded", order_id, "pay-1")
    await send(settings, "payments.events", paid)
    await wait_status(order, order_id, "paid")

    # Last month's traffic, long past both windows.
    await pool.executemany(
        "INSERT INTO idempotency_keys (idempotency_key, route, request_hash, status_code,"
        " response, created_at) VALUES ($1, 'POST /orders', 'h', 201, '{}', now() - interval '30 days')",
        [(f"old-{n}",) for n in range(OLD_ROWS)],
    )
    await pool.executemany(
        "INSERT INTO applied_events (group_id, event_id, applied_at)"
        " VALUES ($2, $1, now() - interval '30 days')",
        [(f"old-{n}", ORDER_WORKER) for n in range(OLD_ROWS)],
    )

    async def only_today_left() -> bool:
        keys = await pool.fetchval("SELECT count(*) FROM idempotency_keys")
        applied = await pool.fetchval(
            "SELECT count(*) FROM applied_events WHERE event_id LIKE 'old-%'"
        )
        return bool(keys == 1 and applied == 0)

    await wait_until(only_today_left, timeout=60, what="the expired rows deleted")
    deleted = (
        _job_items("retention.idempotency_keys")
        + _job_items("retention.applied_events")
        - deleted_before
    )
    assert deleted == 2 * OLD_ROWS  # in batches of at most BATCH (the job's limit)
    assert metrics.TABLE_ROWS.labels("orders", "idempotency_keys")._value.get() == 1

    # Within their windows, what the tables are for still holds.
    again = await order.client.post(
        "/orders", json=order_body(), headers={"Idempotency-Key": "k-1"}
    )
    assert again.status_code == 201 and again.json()["order_id"] == order_id
    assert await pool.fetchval("SELECT count(*) FROM orders") == 1
    duplicates = metrics.EVENTS_CONSUMED.labels(
        topic(settings, "payments.events"), ORDER_WORKER, "duplicate"
    )
    before = duplicates._value.get()
    await send(settings, "payments.events", paid)
    await wait_until(
        lambda: _async(duplicates._value.get() == before + 1), what="the re-sent payment dropped"
    )
    view = (await order.client.get(f"/orders/{order_id}")).json()
    assert [e["what"] for e in view["timeline"]].count("paid") == 1


async def test_notifier_keeps_what_is_live_and_forgets_what_is_old(
    settings: Settings, start_service: Any
) -> None:
    notifier = await start_service(NOTIFIER, settings_=_fast_retention(settings))
    pool = notifier.runtime.pool
    async with pool.acquire() as conn:
        for name, status, age in [
            ("old-resolved", "resolved", timedelta(days=30)),
            ("new-resolved", "resolved", timedelta(hours=1)),
            ("old-firing", "firing", timedelta(days=30)),
            ("ancient-firing", "firing", timedelta(days=120)),
        ]:
            await conn.execute(
                "INSERT INTO anomaly_states (fingerprint, rule, labels, anomaly, status, updated_at)"
                " VALUES ($1, 'stock.low', '{}', '{}', $2, now() - $3::interval)",
                name,
                status,
                age,
            )
            await conn.execute(
                "INSERT INTO routed_anomalies (fingerprint, rule, routes, queues, event_id,"
                " routed_at, resolved_at) VALUES ($1, 'stock.low', '{}', '{}', $1,"
                " now() - $3::interval, CASE WHEN $2 = 'resolved' THEN now() - $3::interval END)",
                name,
                status,
                age,
            )
        deliveries = {
            "old-delivered": ("delivered", timedelta(days=60)),
            "old-retrying": ("retrying", timedelta(days=60)),
            "new-delivered": ("delivered", timedelta(hours=1)),
        }
        ids = {name: uuid.uuid4() for name in deliveries}
        for name, (status, age) in deliveries.items():
            # A delivery and its attempt in one transaction: the running service's retention
            # job may delete an old delivery between two statements (seen once in CI).
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO deliveries (id, request_id, source_event_id, channel, recipient_kind,"
                    " recipient_id, template, language, dedup_key, status, attempt_limit, updated_at)"
                    " VALUES ($1, $2, $2, 'sms', 'customer', 'c-1', 't', 'zh-CN', $2, $3, 6,"
                    " now() - $4::interval)",
                    ids[name],
                    name,
                    status,
                    age,
                )
                await conn.execute(
                    "INSERT INTO delivery_attempts (delivery_id, number, outcome, started_at,"
                    " duration_s) VALUES ($1, 1, 'retryable', now() - $2::interval, 0.1)",
                    ids[name],
                    age,
                )

    async def settled() -> bool:
        return bool(
            await pool.fetchval("SELECT count(*) FROM anomaly_states") == 2
            and await pool.fetchval("SELECT count(*) FROM routed_anomalies") == 2
            and await pool.fetchval("SELECT count(*) FROM deliveries") == 2
        )

    await wait_until(settled, timeout=60, what="expired notifier rows deleted")
    kept = {r[0] for r in await pool.fetch("SELECT fingerprint FROM anomaly_states")}
    assert kept == {"new-resolved", "old-firing"}
    kept = {r[0] for r in await pool.fetch("SELECT fingerprint FROM routed_anomalies")}
    assert kept == {"new-resolved", "old-firing"}
    kept = {r[0] for r in await pool.fetch("SELECT request_id FROM deliveries")}
    assert kept == {"old-retrying", "new-delivered"}  # one still being retried stays
    attempts = {r[0] for r in await pool.fetch("SELECT delivery_id FROM delivery_attempts")}
    assert attempts == {ids["old-retrying"], ids["new-delivered"]}


async def _async(value: bool) -> bool:
    return value
