"""What inventory does for an order lands on the order's timeline, once, status untouched.

The order and inventory services run together on the real broker and database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from testkit import RunningService, events_of_type, publish_event, wait_until

from orderguard.services.inventory.bootstrap import DEFINITION as INVENTORY
from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.inventory import ReservationFailed, Shortage, StockReserved
from orderguard.shared.settings import Settings
from orderguard.shared.uow import UnitOfWork


def order_body(sku: str, quantity: int) -> dict[str, Any]:
    return {
        "customer_id": "cust-7",
        "phone": "13912345678",
        "shipping_address": {
            "province": "广东省",
            "city": "深圳市",
            "district": "南山区",
            "street": "科技园 1 号",
            "recipient": "韩梅梅",
        },
        "lines": [{"sku": sku, "quantity": quantity, "unit_price": "3.00"}],
        "channel": "app",
    }


async def timeline_once(service: RunningService, order_id: str, what: str) -> list[dict[str, Any]]:
    """The order's timeline, once it holds an entry `what` (empty list until then)."""
    view = (await service.client.get(f"/orders/{order_id}")).json()
    return view["timeline"] if any(entry["what"] == what for entry in view["timeline"]) else []


async def test_reserved_failed_and_released_are_recorded_once(
    settings: Settings, start_service: Any
) -> None:
    inventory = await start_service(INVENTORY)
    order = await start_service(ORDER)
    assert (await inventory.client.put("/stock/SKU-9/main", json={"on_hand": 5})).status_code == 200
    # Its own SKU: orders sit on different partitions, so their relative order is not fixed.
    assert (await inventory.client.put("/stock/SKU-8/main", json={"on_hand": 3})).status_code == 200
    await inventory.wait_assigned()
    await order.wait_assigned()

    reserved_id = (await order.client.post("/orders", json=order_body("SKU-9", 2))).json()[
        "order_id"
    ]
    short_id = (await order.client.post("/orders", json=order_body("SKU-8", 10))).json()["order_id"]

    timeline = await wait_until(
        lambda: timeline_once(order, reserved_id, "stock_reserved"), what="reservation"
    )
    reserved = next(entry for entry in timeline if entry["what"] == "stock_reserved")
    assert reserved["actor"] == {
        "kind": "consumer",
        "id": "order.inventory-outcomes",
        "name": "order.inventory-outcomes",
    }
    assert reserved["event_type"] == "inventory.reserved.v1"
    assert reserved["details"] == {"lines": [{"sku": "SKU-9", "warehouse": "main", "quantity": 2}]}
    assert [entry["what"] for entry in timeline] == ["placed", "stock_reserved"]

    timeline = await wait_until(
        lambda: timeline_once(order, short_id, "stock_reservation_failed"),
        what="reservation failure",
    )
    failed = next(entry for entry in timeline if entry["what"] == "stock_reservation_failed")
    assert failed["details"] == {
        "shortages": [{"sku": "SKU-8", "warehouse": "main", "requested": 10, "available": 3}]
    }
    assert "SKU-8@main" in failed["note"]
    short = (await order.client.get(f"/orders/{short_id}")).json()
    assert (short["status"], short["hold"]["reason"]) == ("on_hold", "out_of_stock")

    response = await order.client.post(
        f"/orders/{reserved_id}/cancel", json={"reason": "address wrong"}
    )
    assert response.status_code == 200, response.text
    timeline = await wait_until(
        lambda: timeline_once(order, reserved_id, "stock_released"), what="release"
    )
    released = next(entry for entry in timeline if entry["what"] == "stock_released")
    assert released["note"] == "address wrong"
    assert [entry["what"] for entry in timeline] == [
        "placed",
        "stock_reserved",
        "cancelled",
        "stock_released",
    ]

    # Redelivery: the reserved event again, then a marker on the same key (same partition, so
    # once the marker is on the timeline the copy before it has been consumed).
    inventory_topic = settings.topic_prefix + "inventory.events"
    [original] = [
        e
        for e in await events_of_type(settings, inventory_topic, "inventory.reserved.v1")
        if e.subject == reserved_id
    ]
    await publish_event(settings, inventory_topic, original)
    marker = Envelope(
        type="inventory.reservation_failed.v1",
        source="/test",
        subject=reserved_id,
        data=ReservationFailed(
            order_id=reserved_id,
            shortages=[Shortage(sku="SKU-9", warehouse="main", requested=1, available=0)],
        ).model_dump(mode="json"),
    )
    await publish_event(settings, inventory_topic, marker)
    timeline = await wait_until(
        lambda: timeline_once(order, reserved_id, "stock_reservation_failed"), what="marker"
    )
    assert [entry["what"] for entry in timeline].count("stock_reserved") == 1


async def test_the_handler_itself_records_an_event_once_and_skips_foreign_orders(
    start_service: Any,
) -> None:
    order = await start_service(ORDER, frozenset({"api"}))
    order_id = (await order.client.post("/orders", json=order_body("SKU-1", 1))).json()["order_id"]
    [handler] = [
        consumer
        for consumer in ORDER.workers(order.runtime).consumers
        if consumer.name == "order.inventory-outcomes"
    ]

    def reserved(for_order: str) -> Event:
        data = StockReserved(order_id=for_order, lines=[])
        envelope = Envelope(
            id=f"evt-{for_order}",
            type="inventory.reserved.v1",
            source="/test",
            subject=for_order,
            time=datetime.now(UTC),
            data=data.model_dump(mode="json"),
        )
        return Event(envelope, data, "inventory.events", 0, 0)

    runtime = order.runtime
    # Twice, bypassing the engine's event-id dedup: the timeline's (order, event) key holds.
    for _ in range(2):
        async with UnitOfWork(runtime.pool, runtime.schema) as uow:
            await handler.handle(
                uow, [reserved(order_id), reserved(order_id), reserved("ord_elsewhere")]
            )
            await uow.commit()
    timeline = (await order.client.get(f"/orders/{order_id}")).json()["timeline"]
    assert [entry["what"] for entry in timeline] == ["placed", "stock_reserved"]
    assert (
        await runtime.pool.fetchval(
            "SELECT count(*) FROM order_timeline WHERE order_id = 'ord_elsewhere'"
        )
        == 0
    )
