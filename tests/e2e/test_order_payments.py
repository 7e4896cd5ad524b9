"""Payments move orders: paid (order.paid.v1, confirmation), failed then paid on retry, held on
an amount mismatch, cancelled when unpaid past the deadline (inventory releases once). The same
payment fact twice, under the same or a new event id, acts once; a restart loses nothing.

Real embedded broker and PostgreSQL; the payment service is played by publishing its events.
"""

from __future__ import annotations

from typing import Any

from orderflow import (
    fast,
    notifications,
    order_body,
    order_view,
    payment,
    place,
    published,
    send,
    wait_entry,
    wait_status,
)
from testkit import wait_until

from orderguard.services.inventory.bootstrap import DEFINITION as INVENTORY
from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared.settings import Settings


async def test_success_pays_once_whatever_is_redelivered(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER)
    await order.wait_assigned()
    placed = await place(order)
    order_id = placed["order_id"]
    assert placed["status"] == "placed" and placed["payment_due_at"]

    succeeded = payment("succeeded", order_id, "pay-1")
    await send(settings, "payments.events", succeeded)
    view = await wait_status(order, order_id, "paid")
    assert view["payment_id"] == "pay-1" and view["paid_amount"] == "10.00"
    assert view["promised_delivery_by"]
    paid_entry = next(e for e in view["timeline"] if e["what"] == "paid")
    assert paid_entry["actor"] == {
        "kind": "consumer",
        "id": "order.payments",
        "name": "order.payments",
    }
    assert paid_entry["from_state"] == "placed"

    # The same event again, and the same fact under a new event id; then a marker on the same
    # key (same partition): once the marker is applied, both copies before it were consumed.
    await send(settings, "payments.events", succeeded)
    await send(settings, "payments.events", payment("succeeded", order_id, "pay-1"))
    await send(settings, "payments.events", payment("failed", order_id, "pay-late"))
    view = await wait_entry(order, order_id, "fail_payment_not_applied")
    assert view["status"] == "paid"
    [paid] = await published(settings, "orders.events", "order.paid.v1", order_id)
    assert paid.data["payment_id"] == "pay-1" and paid.data["paid_amount"] == "10.00"
    assert len(await notifications(settings, "order.confirmed", order_id)) == 1
    assert [e["what"] for e in view["timeline"]].count("paid") == 1


async def test_failure_then_a_retry_pays_and_failures_are_published_for_the_detector(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER)
    await order.wait_assigned()
    order_id = (await place(order))["order_id"]

    await send(
        settings, "payments.events", payment("failed", order_id, "pay-1", code="card_declined")
    )
    view = await wait_status(order, order_id, "payment_failed")
    assert "pay" in view["allowed_actions"]
    [failed] = await wait_until(
        lambda: published(settings, "orders.events", "order.payment_failed.v1", order_id),
        what="order.payment_failed.v1",
    )
    assert failed.data["code"] == "card_declined" and failed.data["channel"] == "app"
    assert failed.data["customer_id"] == "cust-1" and failed.data["provider"] == "alipay"

    await send(settings, "payments.events", payment("succeeded", order_id, "pay-2"))
    view = await wait_status(order, order_id, "paid")
    assert [e["what"] for e in view["timeline"]][-2:] == ["paid", "payment_announced"]
    assert view["payment_id"] == "pay-2"


async def test_amount_mismatch_holds_the_order_for_a_person(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER)
    await order.wait_assigned()
    order_id = (await place(order))["order_id"]
    # A "success" for another amount is a mismatch too.
    await send(settings, "payments.events", payment("succeeded", order_id, "pay-1", amount="1.00"))
    view = await wait_status(order, order_id, "on_hold")
    assert view["hold"]["reason"] == "amount_mismatch"
    assert "1.00" in view["hold"]["note"] and "10.00" in view["hold"]["note"]
    [held] = await wait_until(
        lambda: published(settings, "orders.events", "order.held.v1", order_id), what="held"
    )
    assert held.data["reason"] == "amount_mismatch"
    assert len(await notifications(settings, "order.held", order_id)) == 1
    assert not await published(settings, "orders.events", "order.paid.v1", order_id)


async def test_unpaid_past_the_deadline_is_cancelled_and_inventory_releases_once(
    settings: Settings, start_service: Any
) -> None:
    settings = fast(settings, order={"payment_deadline_s": 2.0})
    inventory = await start_service(INVENTORY, settings_=settings)
    order = await start_service(ORDER, settings_=settings)
    put = await inventory.client.put("/stock/SKU-T/main", json={"on_hand": 5})
    assert put.status_code == 200
    await inventory.wait_assigned()
    await order.wait_assigned()
    order_id = (await place(order, order_body(sku="SKU-T", quantity=2)))["order_id"]
    paid_id = (await place(order, order_body(sku="SKU-T", quantity=1)))["order_id"]
    await send(settings, "payments.events", payment("succeeded", paid_id, "pay-ok"))
    await wait_status(order, paid_id, "paid")

    view = await wait_status(order, order_id, "cancelled")
    cancelled = next(e for e in view["timeline"] if e["what"] == "cancelled")
    assert cancelled["note"] == "payment_timeout"
    assert cancelled["actor"] == {
        "kind": "rule",
        "id": "order.payment_timeout",
        "name": "order.payment_timeout",
    }
    await wait_entry(order, order_id, "stock_released")

    async def stock() -> dict[str, Any]:
        [level] = (await inventory.client.get("/stock/SKU-T")).json()
        return level  # type: ignore[no-any-return]

    level = await wait_until(
        lambda: _if(stock(), lambda s: s["reserved"] == 1), what="reservation released"
    )
    assert level["on_hand"] == 5
    released = await published(settings, "inventory.events", "inventory.released.v1", order_id)
    assert len(released) == 1
    [cancel_event] = await published(settings, "orders.events", "order.cancelled.v1", order_id)
    assert cancel_event.data["cancelled_by"] == "rule:order.payment_timeout"
    assert (await order_view(order, paid_id))["status"] == "paid"  # paid in time: untouched


async def _if(value: Any, check: Any) -> Any:
    found = await value
    return found if check(found) else None


async def test_a_restart_mid_flow_loses_nothing(settings: Settings, start_service: Any) -> None:
    order = await start_service(ORDER)
    await order.wait_assigned()
    order_id = (await place(order))["order_id"]
    await order.stop()

    await send(settings, "payments.events", payment("failed", order_id, "pay-1"))
    await send(settings, "payments.events", payment("succeeded", order_id, "pay-2"))

    again = await start_service(ORDER)
    view = await wait_status(again, order_id, "paid")
    assert [e["what"] for e in view["timeline"]][:3] == ["placed", "payment_failed", "paid"]
    assert len(await published(settings, "orders.events", "order.paid.v1", order_id)) == 1


async def test_a_held_order_that_is_paid_ships_only_once_released(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER)
    await order.wait_assigned()
    body = order_body()
    body["shipping_address"] |= {"street": "1号"}
    order_id = (await place(order, body))["order_id"]

    await send(settings, "payments.events", payment("succeeded", order_id, "pay-1"))
    view = await wait_entry(order, order_id, "paid_while_held")
    assert view["status"] == "on_hold" and view["hold"]["held_from"] == "paid"
    assert not await published(settings, "orders.events", "order.paid.v1", order_id)

    response = await order.client.post(
        f"/orders/{order_id}/release", json={"reason": "address completed by phone"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "paid"
    [paid] = await wait_until(
        lambda: published(settings, "orders.events", "order.paid.v1", order_id), what="paid"
    )
    assert paid.data["payment_id"] == "pay-1"
    assert len(await notifications(settings, "order.confirmed", order_id)) == 1
