"""W3C trace context flows from an HTTP request into the events it causes, across services."""

from __future__ import annotations

from testkit import ORDER_BODY, events_of_type, wait_until

from orderguard.services.inventory.bootstrap import DEFINITION as INVENTORY
from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared.settings import Settings
from orderguard.shared.tracing import trace_id

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE}-00f067aa0ba902b7-01"


async def test_trace_id_follows_an_order_into_inventory(settings: Settings, start_service) -> None:  # type: ignore[no-untyped-def]
    order = await start_service(ORDER)
    inventory = await start_service(INVENTORY)
    await inventory.client.put("/stock/SKU-E2E/main", json={"on_hand": 10})
    await inventory.wait_assigned()

    response = await order.client.post(
        "/orders", json=ORDER_BODY, headers={"traceparent": INCOMING}
    )
    assert response.status_code == 201, response.text
    assert trace_id(response.headers["traceparent"]) == TRACE
    order_id = response.json()["order_id"]

    placed = await events_of_type(
        settings, settings.topic_prefix + "orders.events", "order.placed.v1"
    )
    assert [trace_id(e.traceparent) for e in placed] == [TRACE]
    assert placed[0].traceparent != INCOMING, "each hop is a new span of the same trace"

    async def reserved() -> list:  # type: ignore[type-arg]
        found = await events_of_type(
            settings, settings.topic_prefix + "inventory.events", "inventory.reserved.v1"
        )
        return [e for e in found if e.subject == order_id]

    (event,) = await wait_until(reserved, what="the reservation of the traced order")
    assert trace_id(event.traceparent) == TRACE


async def test_a_request_without_trace_context_starts_a_trace(
    settings: Settings, start_service
) -> None:  # type: ignore[no-untyped-def]
    order = await start_service(ORDER)
    response = await order.client.post("/orders", json=ORDER_BODY)
    started = trace_id(response.headers["traceparent"])
    assert started is not None
    placed = await events_of_type(
        settings, settings.topic_prefix + "orders.events", "order.placed.v1"
    )
    assert [trace_id(e.traceparent) for e in placed] == [started]
