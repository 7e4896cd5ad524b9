"""The whole loop, like a user: stock and orders over HTTP -> stock.low on the warehouse queue
-> one notification; cancel -> the reservation released once. All five hops on the real broker
and database, each service with its own schema."""

from __future__ import annotations

from testkit import ORDER_BODY, events_of_type, wait_until

from orderguard.services.inventory.bootstrap import DEFINITION as INVENTORY
from orderguard.services.notifier.bootstrap import DEFINITION as NOTIFIER
from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared.settings import Settings


async def test_orders_drive_stock_low_to_the_warehouse_queue_and_one_notification(
    settings: Settings,
    start_service,  # type: ignore[no-untyped-def]
) -> None:
    order = await start_service(ORDER)
    inventory = await start_service(INVENTORY)
    notifier = await start_service(NOTIFIER)
    put = await inventory.client.put(
        "/stock/SKU-E2E/main", json={"on_hand": 10, "low_stock_threshold": 5}
    )
    assert put.status_code == 200, put.text
    for service in (order, inventory, notifier):
        await service.wait_assigned()

    order_ids = []
    for n in range(3):  # available 10 -> 7 -> 4 (below 5: fires) -> 1 (same episode: quiet)
        # Three customers: one customer ordering the same thing thrice is order.duplicate.
        response = await order.client.post("/orders", json={**ORDER_BODY, "customer_id": f"c-{n}"})
        assert response.status_code == 201, response.text
        order_ids.append(response.json()["order_id"])

    async def one_notification() -> list:  # type: ignore[type-arg]
        response = await notifier.client.get("/notifications", params={"rule": "stock.low"})
        return response.json()

    notifications = await wait_until(one_notification, what="a stock.low notification")
    routed = await wait_until(
        lambda: events_of_type(
            settings, settings.topic_prefix + "queues.warehouse", "anomaly.routed.v1"
        ),
        what="stock.low on queues.warehouse",
    )

    async def reserved_nine() -> bool:
        return (await inventory.client.get("/stock/SKU-E2E")).json()[0]["reserved"] == 9

    await wait_until(reserved_nine, what="all three orders reserved")
    # Everything has settled: the third order's stock change went through the detector too.
    detected = await events_of_type(
        settings, settings.topic_prefix + "anomalies.detected", "anomaly.detected.v1"
    )
    assert len(detected) == 1
    assert len(routed) == 1
    anomaly = routed[0].data["anomaly"]
    assert anomaly["rule"] == "stock.low"
    assert anomaly["labels"]["sku"] == "SKU-E2E" and anomaly["labels"]["team"] == "warehouse"
    notifications = (
        await notifier.client.get("/notifications", params={"rule": "stock.low"})
    ).json()
    assert len(notifications) == 1
    assert notifications[0]["queue"] == "warehouse"
    assert notifications[0]["fingerprint"] == anomaly["fingerprint"]

    # Cancel one order: its reservation is released exactly once, even when asked twice.
    cancelled = await order.client.post(
        f"/orders/{order_ids[0]}/cancel", json={"reason": "customer changed mind"}
    )
    assert cancelled.status_code == 200, cancelled.text
    again = await order.client.post(f"/orders/{order_ids[0]}/cancel", json={"reason": "again"})
    assert again.status_code == 409

    async def released() -> bool:
        rows = (await inventory.client.get(f"/reservations/{order_ids[0]}")).json()
        return [r["state"] for r in rows] == ["released"]

    await wait_until(released, what="the cancelled order's reservation released")
    level = (await inventory.client.get("/stock/SKU-E2E")).json()[0]
    assert (level["on_hand"], level["reserved"], level["available"]) == (10, 6, 4)
    releases = await events_of_type(
        settings, settings.topic_prefix + "inventory.events", "inventory.released.v1"
    )
    assert [e.subject for e in releases] == [order_ids[0]]

    async def timeline_shows_release() -> bool:
        view = (await order.client.get(f"/orders/{order_ids[0]}")).json()
        return any("released" in entry["what"] for entry in view["timeline"])

    await wait_until(timeline_shows_release, what="the release on the order's timeline")
