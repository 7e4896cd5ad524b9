"""Holds: an order that fails the intake checks is created on hold with the reason (and the
customer told what to do), listed in the operators' queue by priority, released by hand; a
hold with an auto-release time lifts by itself; stock that cannot be reserved holds the order
as out of stock. Real embedded broker and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from orderflow import (
    fast,
    notifications,
    order_body,
    place,
    published,
    wait_entry,
    wait_status,
)
from testkit import wait_until

from orderguard.services.inventory.bootstrap import DEFINITION as INVENTORY
from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared.settings import Settings


async def test_incomplete_address_is_held_listed_by_priority_and_released_by_hand(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER, frozenset({"api"}))
    body = order_body(customer_id="cust-vip", member_level="platinum", express=True)
    body["shipping_address"] |= {"street": "1号", "district": "", "postal_code": "5180"}
    held = await place(order, body)
    assert held["status"] == "on_hold"
    assert held["hold"]["reason"] == "address_incomplete"
    assert "street" in held["hold"]["note"] and "postal code" in held["hold"]["note"]
    assert held["hold"]["held_from"] == "placed"
    assert held["priority"] == {"level": "P1", "score": 70}
    assert sorted(held["allowed_actions"]) == ["cancel", "fail_payment", "pay", "release"]
    hold_entry = held["timeline"][1]
    assert hold_entry["actor"] == {"kind": "rule", "id": "order.intake", "name": "order.intake"}
    assert hold_entry["details"]["problems"] == [
        "street_too_short",
        "district_missing",
        "postal_code_invalid",
    ]

    bad_phone = await place(order, order_body(customer_id="cust-2", phone="12345"))
    assert bad_phone["hold"]["reason"] == "phone_invalid"
    fine = await place(order, order_body(customer_id="cust-3"))
    assert fine["status"] == "placed" and fine["priority"]["level"] == "P4"

    queue = (await order.client.get("/orders", params={"status": "on_hold"})).json()["orders"]
    assert [o["order_id"] for o in queue] == [held["order_id"], bad_phone["order_id"]]
    by_reason = (await order.client.get("/orders", params={"hold_reason": "phone_invalid"})).json()
    assert [o["order_id"] for o in by_reason["orders"]] == [bad_phone["order_id"]]
    mine = (await order.client.get("/orders", params={"customer_id": "cust-3"})).json()
    assert [o["order_id"] for o in mine["orders"]] == [fine["order_id"]]

    [event] = await wait_until(
        lambda: published(settings, "orders.events", "order.held.v1", held["order_id"]),
        what="order.held.v1",
    )
    assert event.data["reason"] == "address_incomplete" and event.data["held_from"] == "placed"
    [notice] = await notifications(settings, "order.held", held["order_id"])
    assert notice.data["params"]["what_you_can_do"]
    assert notice.data["recipient"]["id"] == "cust-vip"

    released = await order.client.post(
        f"/orders/{held['order_id']}/release", json={"reason": "address confirmed by phone"}
    )
    assert released.status_code == 200, released.text
    view = released.json()
    assert view["status"] == "placed" and view["hold"] is None
    assert view["timeline"][-1]["what"] == "released"
    assert view["timeline"][-1]["note"] == "address confirmed by phone"

    again = await order.client.post(f"/orders/{held['order_id']}/release", json={"reason": "x"})
    assert again.status_code == 409
    problem = again.json()
    assert problem["current_state"] == "placed"
    assert "on_hold" in problem["detail"]
    assert set(problem["allowed_actions"]) == {"cancel", "fail_payment", "hold", "pay"}

    cancelled = await order.client.post(
        f"/orders/{bad_phone['order_id']}/cancel", json={"reason": "customer unreachable"}
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"

    malformed = await order.client.post(
        "/orders", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 422


async def test_a_hold_with_an_auto_release_time_lifts_by_itself(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER, settings_=fast(settings))
    order_id = (await place(order))["order_id"]
    release_at = datetime.now(UTC) + timedelta(seconds=1)
    response = await order.client.post(
        f"/orders/{order_id}/hold",
        json={"reason": "fraud check", "release_at": release_at.isoformat()},
    )
    assert response.status_code == 200, response.text
    assert response.json()["hold"]["reason"] == "manual"
    assert response.json()["status"] == "on_hold"

    twice = await order.client.post(f"/orders/{order_id}/hold", json={"reason": "again"})
    assert twice.status_code == 409
    assert twice.json()["current_state"] == "on_hold"

    view = await wait_status(order, order_id, "placed")
    released = view["timeline"][-1]
    assert released["what"] == "released"
    assert released["actor"] == {
        "kind": "rule",
        "id": "order.auto_release",
        "name": "order.auto_release",
    }
    [event] = await wait_until(
        lambda: published(settings, "orders.events", "order.released.v1", order_id),
        what="order.released.v1",
    )
    assert event.data["released_by"] == "rule:order.auto_release"
    assert event.data["status"] == "placed"


async def test_stock_that_cannot_be_reserved_holds_the_order_and_tells_the_customer(
    settings: Settings, start_service: Any
) -> None:
    inventory = await start_service(INVENTORY)
    order = await start_service(ORDER)
    assert (await inventory.client.put("/stock/SKU-S/main", json={"on_hand": 1})).status_code == 200
    await inventory.wait_assigned()
    await order.wait_assigned()
    order_id = (await place(order, order_body(sku="SKU-S", quantity=5)))["order_id"]

    view = await wait_status(order, order_id, "on_hold")
    assert view["hold"]["reason"] == "out_of_stock"
    held = next(e for e in view["timeline"] if e["what"] == "on_hold")
    assert held["details"]["shortages"] == [
        {"sku": "SKU-S", "warehouse": "main", "requested": 5, "available": 1}
    ]
    [notice] = await wait_until(
        lambda: notifications(settings, "order.out_of_stock", order_id), what="notice"
    )
    assert notice.data["params"]["skus"] == "SKU-S"
    assert "refund" in notice.data["params"]["what_you_can_do"]
    assert not await notifications(settings, "order.held", order_id)  # one notice, not two

    response = await order.client.post(
        f"/orders/{order_id}/cancel", json={"reason": "customer chose a refund"}
    )
    assert response.status_code == 200
    await wait_entry(order, order_id, "cancelled")


async def test_releasing_an_out_of_stock_hold_reserves_again_or_stays_held_with_the_reason(
    settings: Settings, start_service: Any
) -> None:
    inventory = await start_service(INVENTORY)
    order = await start_service(ORDER)
    assert (await inventory.client.put("/stock/SKU-R/main", json={"on_hand": 1})).status_code == 200
    await inventory.wait_assigned()
    await order.wait_assigned()
    order_id = (await place(order, order_body(sku="SKU-R", quantity=3)))["order_id"]
    await wait_status(order, order_id, "on_hold")

    # Still short: inventory is asked again, says no, and the order stays held.
    response = await order.client.post(
        f"/orders/{order_id}/release", json={"reason": "checking the shelf"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "on_hold"
    await wait_until(
        lambda: published(settings, "orders.events", "order.reservation_requested.v1", order_id),
        what="order.reservation_requested.v1",
    )

    async def failed_twice() -> bool:
        view = (await order.client.get(f"/orders/{order_id}")).json()
        return [e["what"] for e in view["timeline"]].count("stock_reservation_failed") == 2

    await wait_until(failed_twice, what="the second attempt failed")
    view = (await order.client.get(f"/orders/{order_id}")).json()
    assert (view["status"], view["hold"]["reason"]) == ("on_hold", "out_of_stock")

    # Restocked: the next release reserves and the order is released.
    assert (
        await inventory.client.put("/stock/SKU-R/main", json={"on_hand": 10})
    ).status_code == 200
    response = await order.client.post(
        f"/orders/{order_id}/release", json={"reason": "restock arrived"}
    )
    assert response.status_code == 200, response.text
    view = await wait_status(order, order_id, "placed")
    whats = [e["what"] for e in view["timeline"]]
    assert whats[-3:] == ["stock_reservation_requested", "stock_reserved", "released"]
    reservations = (await inventory.client.get(f"/reservations/{order_id}")).json()
    assert [(r["sku"], r["quantity"], r["state"]) for r in reservations] == [("SKU-R", 3, "held")]
    assert len(await published(settings, "orders.events", "order.released.v1", order_id)) == 1
