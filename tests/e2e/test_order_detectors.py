"""The order detectors on the real broker: a customer ordering the same thing twice raises
`order.duplicate` (a retry with the same Idempotency-Key does not); a burst of payment failures
on a channel raises `payment.failures` once for the burst."""

from __future__ import annotations

from typing import Any

from orderflow import order_body, payment, place, published, send
from testkit import wait_until

from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared.settings import Settings


async def anomalies(settings: Settings, rule: str) -> list[Any]:
    return [
        envelope
        for envelope in await published(settings, "anomalies.detected", "anomaly.detected.v1")
        if envelope.data["rule"] == rule
    ]


async def test_a_duplicate_order_reaches_the_anomalies_topic(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER)
    await order.wait_assigned()
    retry = {"Idempotency-Key": "checkout-1"}
    body = order_body(customer_id="cust-dup")
    first = await order.client.post("/orders", json=body, headers=retry)
    replay = await order.client.post("/orders", json=body, headers=retry)
    assert first.json()["order_id"] == replay.json()["order_id"]  # a retry is not a new order
    other = await place(order, order_body(customer_id="cust-other"))
    second = await place(order, body)

    [anomaly] = await wait_until(lambda: anomalies(settings, "order.duplicate"), what="duplicate")
    data = anomaly.data
    assert data["team"] == "risk"
    assert data["labels"]["customer_id"] == "cust-dup" and data["labels"]["channel"] == "app"
    assert first.json()["order_id"] in data["summary"] and second["order_id"] in data["summary"]
    assert other["order_id"] not in data["summary"]


async def test_a_burst_of_payment_failures_raises_one_anomaly(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER)
    await order.wait_assigned()
    ids = [(await place(order, order_body(customer_id=f"c-{n}")))["order_id"] for n in range(6)]
    for n, order_id in enumerate(ids[:5]):
        await send(settings, "payments.events", payment("failed", order_id, f"pay-{n}"))
    [anomaly] = await wait_until(
        lambda: anomalies(settings, "payment.failures"), what="payment failure burst"
    )
    assert anomaly.data["team"] == "finance"
    assert anomaly.data["labels"]["channel"] == "app"
    assert "5 payment failures on channel app" in anomaly.data["summary"]

    # One more failure in the same burst: once the detector has counted it (its state) and
    # the outbox is empty, there is still one anomaly.
    await send(settings, "payments.events", payment("failed", ids[5], "pay-5"))
    pool = order.runtime.pool

    async def counted_and_sent() -> bool:
        state = await pool.fetchval(
            "SELECT state FROM detector_state WHERE rule = 'payment.failures'"
        )
        unsent = await pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
        return bool(state) and len(state["scopes"]["channel:app"]["times"]) == 6 and unsent == 0

    await wait_until(counted_and_sent, what="the sixth failure counted")
    assert len(await anomalies(settings, "payment.failures")) == 1
