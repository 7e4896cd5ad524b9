"""The order API against the real broker and database: place, read, cancel, idempotency, auth."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from testkit import RunningService, events_of_type, wait_until

from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared.envelope import Envelope
from orderguard.shared.settings import Settings

TEST_KEY_ID = hashlib.sha256(b"test-key").hexdigest()[:8]

PHONE = "13812345678"
STREET = "文三路 478 号华星科技大厦"


def order_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer_id": "cust-42",
        "phone": "+86 138 1234 5678",
        "shipping_address": {
            "province": "浙江省",
            "city": "杭州市",
            "district": "西湖区",
            "street": STREET,
            "recipient": "李雷",
            "postal_code": "310012",
        },
        "lines": [
            {"sku": "SKU-1", "quantity": 2, "unit_price": "19.90"},
            {"sku": "SKU-2", "quantity": 1, "unit_price": 5.5},
        ],
        "channel": "mini_program",
    }
    body.update(overrides)
    return body


async def placed_events(settings: Settings, order_id: str | None = None) -> list[Envelope]:
    found = await events_of_type(
        settings, settings.topic_prefix + "orders.events", "order.placed.v1"
    )
    return [e for e in found if order_id is None or e.subject == order_id]


async def count_rows(service: RunningService, table: str) -> int:
    return await service.runtime.pool.fetchval(f"SELECT count(*) FROM {table}")  # type: ignore[no-any-return]


async def test_placed_order_is_readable_with_its_timeline_and_published(
    settings: Settings, start_service: Any, caplog: pytest.LogCaptureFixture
) -> None:
    order = await start_service(ORDER)
    response = await order.client.post("/orders", json=order_body())
    assert response.status_code == 201, response.text
    created = response.json()
    order_id = created["order_id"]
    assert order_id.startswith("ord_")
    assert response.headers["location"] == f"/orders/{order_id}"

    response = await order.client.get(response.headers["location"])
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["status"] == "placed"
    assert view["allowed_actions"] == ["cancel", "fail_payment", "hold", "pay"]
    assert (view["customer_id"], view["channel"], view["warehouse"]) == (
        "cust-42",
        "mini_program",
        "main",
    )
    assert view["phone"] == "138****5678"
    assert view["shipping_address"] == order_body()["shipping_address"]
    assert [
        (ln["sku"], ln["quantity"], ln["unit_price"], ln["amount"]) for ln in view["lines"]
    ] == [
        ("SKU-1", 2, "19.90", "39.80"),
        ("SKU-2", 1, "5.50", "5.50"),
    ]
    assert view["total_amount"] == "45.30"
    [placed] = view["timeline"]
    assert placed["what"] == "placed"
    assert placed["to_state"] == "placed"
    # The caller is named by scope and a short hash of its key, never the key itself.
    assert placed["actor"] == {
        "kind": "api",
        "id": f"orders:write#{TEST_KEY_ID}",
        "name": f"orders:write#{TEST_KEY_ID}",
    }
    assert placed["note"] == "placed through mini_program"
    assert placed["event_type"] == "order.placed.v1"
    assert view == created  # the 201 body is the order view

    [event] = await wait_until(
        lambda: placed_events(settings, order_id), what="order.placed.v1 published"
    )
    assert event.id == placed["event_id"]
    assert event.source == "/orderguard/order"
    assert event.data["total_amount"] == "45.30"
    assert event.data["phone"] == PHONE  # the contract carries the full number for delivery
    assert event.data["warehouse"] == "main"
    assert [line["sku"] for line in event.data["lines"]] == ["SKU-1", "SKU-2"]

    logged = caplog.text
    assert order_id in logged  # the order was logged ...
    assert PHONE not in logged and "138 1234" not in logged  # ... its phone never
    assert STREET not in logged and "李雷" not in logged  # ... nor its address


async def test_unknown_order_is_a_404_problem(start_service: Any) -> None:
    order = await start_service(ORDER, frozenset({"api"}))
    for response in (
        await order.client.get("/orders/ord_NOPE"),
        await order.client.post("/orders/ord_NOPE/cancel", json={"reason": "why not"}),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["type"].endswith("/order-not-found")
        assert problem["order_id"] == "ord_NOPE"


async def test_invalid_order_is_a_422_problem_naming_each_field_and_writes_nothing(
    start_service: Any,
) -> None:
    order = await start_service(ORDER, frozenset({"api"}))
    bad = order_body(
        phone="12345",
        shipping_address={**order_body()["shipping_address"], "city": "  "},
        lines=[{"sku": "SKU-1", "quantity": 0, "unit_price": "1.999"}],
        channel="telegram",
    )
    response = await order.client.post("/orders", json=bad)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    # The phone "12345" is plausible text: alone it would create the order held for review.
    assert {error["field"] for error in problem["errors"]} == {
        "body.shipping_address.city",
        "body.lines.0.quantity",
        "body.lines.0.unit_price",
        "body.channel",
    }
    assert all(error["message"] and error["code"] for error in problem["errors"])

    response = await order.client.post("/orders", json=order_body(lines=[]))
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["body.lines"]
    assert await count_rows(order, "orders") == 0
    assert await count_rows(order, "outbox") == 0


async def test_idempotency_key_replays_the_first_answer_and_publishes_once(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER)
    headers = {"Idempotency-Key": "place-1"}
    first = await order.client.post("/orders", json=order_body(), headers=headers)
    again = await order.client.post("/orders", json=order_body(), headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers

    # Twins racing on one key: one order between them.
    racing = {"Idempotency-Key": "place-2"}
    twins = await asyncio.gather(
        *(order.client.post("/orders", json=order_body(), headers=racing) for _ in range(2))
    )
    assert [t.status_code for t in twins] == [201, 201]
    assert twins[0].json()["order_id"] == twins[1].json()["order_id"] != first.json()["order_id"]

    reused = await order.client.post("/orders", json=order_body(channel="app"), headers=headers)
    assert reused.status_code == 422
    assert reused.headers["content-type"] == "application/problem+json"
    assert reused.json()["type"].endswith("/idempotency-key-reused")

    # A marker placed last: the relay publishes in write order, so once it is out everything is.
    marker = (await order.client.post("/orders", json=order_body())).json()["order_id"]
    await wait_until(lambda: placed_events(settings, marker), what="marker order published")
    published = [event.subject for event in await placed_events(settings)]
    assert sorted(published) == sorted(
        [first.json()["order_id"], twins[0].json()["order_id"], marker]
    )
    assert await count_rows(order, "orders") == 3


async def test_cancel_publishes_once_and_a_second_cancel_is_a_409_naming_the_status(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER)
    order_id = (await order.client.post("/orders", json=order_body())).json()["order_id"]

    response = await order.client.post(
        f"/orders/{order_id}/cancel", json={"reason": "customer changed mind"}
    )
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["status"] == "cancelled"
    assert view["allowed_actions"] == []
    placed, cancelled = view["timeline"]
    assert placed["what"] == "placed"
    assert cancelled["what"] == "cancelled"
    assert (cancelled["from_state"], cancelled["to_state"]) == ("placed", "cancelled")
    assert cancelled["note"] == "customer changed mind"
    assert cancelled["actor"] == {
        "kind": "api",
        "id": f"orders:write#{TEST_KEY_ID}",
        "name": f"orders:write#{TEST_KEY_ID}",
    }
    assert cancelled["event_type"] == "order.cancelled.v1"
    assert (await order.client.get(f"/orders/{order_id}")).json() == view

    again = await order.client.post(f"/orders/{order_id}/cancel", json={"reason": "twice"})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    problem = again.json()
    assert problem["current_state"] == "cancelled"
    assert "cancelled" in problem["detail"]
    assert problem["type"].endswith("/illegal-transition")

    [event] = await wait_until(
        lambda: events_of_type(
            settings, settings.topic_prefix + "orders.events", "order.cancelled.v1"
        ),
        what="order.cancelled.v1 published",
    )
    assert event.id == cancelled["event_id"]
    assert event.subject == order_id
    assert event.data["reason"] == "customer changed mind"
    assert event.data["cancelled_by"] == f"api:orders:write#{TEST_KEY_ID}"
    assert len((await order.client.get(f"/orders/{order_id}")).json()["timeline"]) == 2


async def test_cancel_with_an_idempotency_key_replays_instead_of_conflicting(
    start_service: Any,
) -> None:
    order = await start_service(ORDER, frozenset({"api"}))
    order_id = (await order.client.post("/orders", json=order_body())).json()["order_id"]
    headers = {"Idempotency-Key": "cancel-1"}
    first = await order.client.post(
        f"/orders/{order_id}/cancel", json={"reason": "dup"}, headers=headers
    )
    retry = await order.client.post(
        f"/orders/{order_id}/cancel", json={"reason": "dup"}, headers=headers
    )
    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    cancellations = await order.runtime.pool.fetchval(
        """SELECT count(*) FROM outbox WHERE headers @> '[["ce_type", "order.cancelled.v1"]]'"""
    )
    assert cancellations == 1


async def test_missing_or_unknown_api_key_is_a_401_and_writes_nothing(start_service: Any) -> None:
    order = await start_service(ORDER, frozenset({"api"}))
    client = order.client
    for api_key in (None, "not-a-key"):
        for method, path, body in (
            ("POST", "/orders", order_body()),
            ("GET", "/orders/ord_X", None),
            ("POST", "/orders/ord_X/cancel", {"reason": "r"}),
        ):
            request = client.build_request(method, path, json=body)
            if api_key is None:
                del request.headers["X-API-Key"]
            else:
                request.headers["X-API-Key"] = api_key
            response = await client.send(request)
            assert response.status_code == 401, (method, path, api_key, response.text)
            assert response.headers["content-type"] == "application/problem+json"
    assert await count_rows(order, "orders") == 0
    assert await count_rows(order, "outbox") == 0
