"""Facts an order's status refuses that a team must act on raise anomalies the default routing
file routes: a payment captured on a cancelled order to finance, a dispatch for a held order to
logistics. Real embedded broker and PostgreSQL; payments and logistics are played by publishing
their events; the notifier's router runs on its built-in routing file."""

from __future__ import annotations

from typing import Any

from orderflow import order_body, payment, place, send, shipment, wait_entry
from testkit import events_of_type, wait_until

from orderguard.services.notifier.bootstrap import DEFINITION as NOTIFIER
from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared.envelope import Envelope
from orderguard.shared.settings import Settings


async def routed(settings: Settings, team: str, rule: str, order_id: str) -> list[Envelope]:
    found = await events_of_type(
        settings, settings.topic_prefix + f"queues.{team}", "anomaly.routed.v1"
    )
    return [
        e
        for e in found
        if e.data["anomaly"]["rule"] == rule and e.data["anomaly"]["labels"]["order_id"] == order_id
    ]


async def test_payment_after_cancellation_goes_to_finance_and_dispatch_while_held_to_logistics(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER)
    notifier = await start_service(NOTIFIER)
    await order.wait_assigned()
    await notifier.wait_assigned()

    cancelled = (await place(order, order_body(customer_id="c-cancel")))["order_id"]
    response = await order.client.post(f"/orders/{cancelled}/cancel", json={"reason": "no"})
    assert response.status_code == 200, response.text
    late = payment("succeeded", cancelled, "pay-late")
    await send(settings, "payments.events", late)
    await send(settings, "payments.events", late)  # redelivered: one anomaly, one routing
    [to_finance] = await wait_until(
        lambda: routed(settings, "finance", "payment.captured_after_cancel", cancelled),
        what="the late capture routed to finance",
    )
    anomaly = to_finance.data["anomaly"]
    assert anomaly["labels"]["payment_id"] == "pay-late" and "refund" in anomaly["summary"]
    await wait_entry(order, cancelled, "pay_not_applied")

    held = (await place(order, order_body(customer_id="c-held")))["order_id"]
    response = await order.client.post(f"/orders/{held}/hold", json={"reason": "fraud check"})
    assert response.status_code == 200, response.text
    await send(settings, "logistics.events", shipment("dispatched", held, "shp-held"))
    [to_logistics] = await wait_until(
        lambda: routed(settings, "logistics", "shipment.dispatched_while_held", held),
        what="the dispatch routed to logistics",
    )
    assert to_logistics.data["anomaly"]["labels"]["shipment_id"] == "shp-held"
    view = (await order.client.get(f"/orders/{held}")).json()
    assert view["status"] == "on_hold"
    assert len(await routed(settings, "finance", "payment.captured_after_cancel", cancelled)) == 1
