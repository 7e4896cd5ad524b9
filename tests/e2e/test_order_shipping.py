"""Carriers move paid orders: dispatched -> shipped (order.shipped.v1 for inventory, the customer
told), delivered -> delivered, completed after the configured days. A dispatch told twice
(same id, or a new one) ships once. Real embedded broker and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from orderflow import (
    fast,
    notifications,
    payment,
    place,
    published,
    send,
    shipment,
    wait_status,
)
from testkit import wait_until

from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared.settings import Settings


async def test_dispatch_delivery_and_completion(settings: Settings, start_service: Any) -> None:
    settings = fast(settings, order={"complete_after_days": 2 / 86400})  # two seconds
    order = await start_service(ORDER, settings_=settings)
    await order.wait_assigned()
    order_id = (await place(order))["order_id"]

    await send(settings, "payments.events", payment("succeeded", order_id, "pay-1"))
    await wait_status(order, order_id, "paid")

    dispatched = shipment("dispatched", order_id, "shp-1")
    await send(settings, "logistics.events", dispatched)
    view = await wait_status(order, order_id, "shipped")
    shipped_entry = next(e for e in view["timeline"] if e["what"] == "shipped")
    assert shipped_entry["details"]["shipment_id"] == "shp-1"
    assert shipped_entry["actor"] == {
        "kind": "consumer",
        "id": "order.shipments",
        "name": "order.shipments",
    }

    await send(settings, "logistics.events", dispatched)  # the same event again
    await send(settings, "logistics.events", shipment("dispatched", order_id, "shp-1"))  # new id
    await send(settings, "logistics.events", shipment("delivered", order_id, "shp-1"))
    view = await wait_status(order, order_id, "delivered")
    assert view["delivered_at"]

    view = await wait_status(order, order_id, "completed")
    assert view["timeline"][-1]["actor"] == {
        "kind": "rule",
        "id": "order.auto_complete",
        "name": "order.auto_complete",
    }
    whats = [e["what"] for e in view["timeline"]]
    assert whats.count("shipped") == 1
    [shipped] = await published(settings, "orders.events", "order.shipped.v1", order_id)
    assert shipped.data["tracking_number"] == "SF100" and shipped.data["carrier"] == "sf-express"
    [notice] = await notifications(settings, "order.shipped", order_id)
    assert notice.data["params"]["tracking_number"] == "SF100"
    await wait_until(
        lambda: published(settings, "orders.events", "order.completed.v1", order_id),
        what="order.completed.v1",
    )
