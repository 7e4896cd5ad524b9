"""A paid order that is cancelled is refunded: the order service asks (order.refund_requested.v1),
after-sales issues the refund once (refund.issued.v1) and tells the customer, and the order's
timeline shows both. Real embedded broker and PostgreSQL; the payment service is played by
publishing its events."""

from __future__ import annotations

from typing import Any

from orderflow import (
    notifications,
    order_body,
    payment,
    place,
    published,
    send,
    wait_entry,
    wait_status,
)
from testkit import wait_until

from orderguard.services.aftersales.bootstrap import DEFINITION as AFTERSALES
from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared.settings import Settings


async def test_a_cancelled_paid_order_is_refunded_once_and_the_customer_told(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER)
    aftersales = await start_service(AFTERSALES)
    await order.wait_assigned()
    await aftersales.wait_assigned()
    order_id = (await place(order, order_body(customer_id="c-refund")))["order_id"]
    await send(settings, "payments.events", payment("succeeded", order_id, "pay-r"))
    await wait_status(order, order_id, "paid")

    response = await order.client.post(f"/orders/{order_id}/cancel", json={"reason": "no"})
    assert response.status_code == 200, response.text
    whats = [e["what"] for e in response.json()["timeline"]]
    assert whats[-2:] == ["cancelled", "refund_requested"]
    [asked] = await wait_until(
        lambda: published(settings, "orders.events", "order.refund_requested.v1", order_id),
        what="order.refund_requested.v1",
    )
    # Told again under a new event id (a producer's retry): still one refund.
    await send(settings, "orders.events", asked.model_copy(update={"id": "again-1"}))

    async def refunds() -> list[Any]:
        found = await published(settings, "aftersales.events", "refund.issued.v1")
        return [e for e in found if e.data["order_id"] == order_id]

    [refund] = await wait_until(refunds, what="refund.issued.v1")
    assert refund.data["amount"] == "10.00"
    [notice] = await wait_until(
        lambda: notifications(settings, "refund.issued", order_id), what="the customer told"
    )
    assert notice.data["recipient"]["id"] == "c-refund"
    # The refund case moves the order into the recycle bin, which the timeline shows too.
    view = await wait_entry(order, order_id, "moved_to_recycle_bin")
    whats = [e["what"] for e in view["timeline"]]
    assert whats.index("cancelled") < whats.index("refund_requested")
    assert whats.index("refund_requested") < whats.index("moved_to_recycle_bin")

    async def both_applied() -> bool:
        return bool(
            await aftersales.runtime.pool.fetchval(
                "SELECT count(*) = 2 FROM applied_events"
                " WHERE group_id = 'aftersales.worker'"
                " AND event_id IN ($1, 'again-1')",
                asked.id,
            )
        )

    await wait_until(both_applied, what="the request and its retry applied")
    assert len(await refunds()) == 1
