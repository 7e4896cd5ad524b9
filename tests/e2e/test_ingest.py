"""POST /events: a publisher without Kafka sends one CloudEvent; it is published once, keyed by subject.

Most tests mount the shared router on a tiny service that accepts order.cancelled.v1 onto
orders.events; the last one uses the order service's own mount for payment providers.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from testkit import read_topic, wait_until

from orderguard.cli.services_registry import OrderguardSettings
from orderguard.shared.contract.ingest import MAX_EVENT_BYTES, build_ingest_router
from orderguard.shared.envelope import CONTENT_TYPE
from orderguard.shared.events.orders import OrderCancelled
from orderguard.shared.runtime import ServiceDefinition, build_app
from orderguard.shared.settings import Settings
from orderguard.shared.tracing import trace_id

INGEST = ServiceDefinition(
    name="order",
    migrations=None,
    routers=lambda runtime: [build_ingest_router(runtime, [OrderCancelled])],
)
HEADERS = {"content-type": CONTENT_TYPE}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def cancellation(order_id: str = "ord_1", event_id: str | None = None, **changes: Any) -> dict:  # type: ignore[type-arg]
    event = {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "type": "order.cancelled.v1",
        "source": "/carriers/sf-express",
        "subject": order_id,
        "time": "2026-11-22T08:05:00Z",
        "datacontenttype": "application/json",
        "data": {
            "order_id": order_id,
            "reason": "address unreachable",
            "cancelled_by": "carrier:sf-express",
            "cancelled_at": "2026-11-22T08:05:00Z",
        },
    }
    event.update(changes)
    return event


async def published(settings: Settings, event_id: str) -> list[Any]:
    return [
        record
        for record in await read_topic(settings, settings.topic_prefix + "orders.events")
        if record.headers.get("ce_id") == event_id.encode()
    ]


def field_errors(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return {error["field"]: error["code"] for error in response.json()["errors"]}


async def test_an_event_is_published_once_keyed_by_its_subject_however_often_it_is_sent(
    settings: Settings, start_service: Any
) -> None:
    service = await start_service(INGEST, roles=frozenset({"api"}))
    event = cancellation("ord_A")
    first = await service.client.post(
        "/events",
        json=event,
        headers={**HEADERS, "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"},
    )
    assert first.status_code == 202, first.text
    assert first.json() == {
        "id": event["id"],
        "type": "order.cancelled.v1",
        "subject": "ord_A",
        "topic": settings.topic_prefix + "orders.events",
        "status": "accepted",
    }
    assert "idempotent-replayed" not in first.headers

    # A retry with the body re-serialised (other key order) is the same event.
    again = await service.client.post(
        "/events", json=dict(reversed(list(event.items()))), headers=HEADERS
    )
    twins = await asyncio.gather(
        *(service.client.post("/events", json=event, headers=HEADERS) for _ in range(2))
    )
    for replay in [again, *twins]:
        assert (replay.status_code, replay.json()) == (202, first.json())
        assert replay.headers["idempotent-replayed"] == "true"

    # The relay publishes in write order: once the marker is out, so is everything before it.
    marker = cancellation("ord_marker")
    assert (await service.client.post("/events", json=marker)).status_code == 202
    await wait_until(lambda: published(settings, marker["id"]), what="the marker event")

    (record,) = await published(settings, event["id"])
    assert record.key == b"ord_A"
    assert record.headers["ce_type"] == b"order.cancelled.v1"
    sent = record.envelope
    assert (sent.type, sent.source, sent.subject) == (
        "order.cancelled.v1",
        "/carriers/sf-express",
        "ord_A",
    )
    assert sent.data == event["data"]
    # No traceparent in the event: it joins the trace of the request that carried it.
    assert trace_id(sent.traceparent) == TRACE


async def test_the_same_id_with_another_body_is_a_conflict_and_publishes_nothing_more(
    settings: Settings, start_service: Any
) -> None:
    service = await start_service(INGEST, roles=frozenset({"api"}))
    event = cancellation("ord_B")
    assert (await service.client.post("/events", json=event)).status_code == 202

    changed = cancellation("ord_B", event_id=event["id"])
    changed["data"]["reason"] = "something else"
    conflict = await service.client.post("/events", json=changed)
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == "application/problem+json"
    problem = conflict.json()
    assert problem["type"].endswith("/event-id-conflict")
    assert problem["event_id"] == event["id"]
    assert event["id"] in problem["detail"]

    marker = cancellation("ord_marker")
    assert (await service.client.post("/events", json=marker)).status_code == 202
    await wait_until(lambda: published(settings, marker["id"]), what="the marker event")
    (record,) = await published(settings, event["id"])
    assert record.envelope.data["reason"] == "address unreachable"


async def test_invalid_events_get_field_level_problems_and_are_not_published(
    settings: Settings, start_service: Any
) -> None:
    service = await start_service(INGEST, roles=frozenset({"api"}))
    post = service.client.post

    unknown = await post("/events", json=cancellation(type="order.exploded.v1"))
    assert unknown.status_code == 422
    assert unknown.json()["type"].endswith("/unknown-event-type")
    assert "'order.exploded.v1'" in unknown.json()["detail"]
    assert unknown.json()["accepted"] == ["order.cancelled.v1"]

    elsewhere = await post("/events", json=cancellation(type="order.placed.v1"))
    assert elsewhere.status_code == 422
    assert elsewhere.json()["type"].endswith("/event-type-not-accepted")
    assert elsewhere.json()["event_type"] == "order.placed.v1"

    bad_data = cancellation()
    del bad_data["data"]["reason"]
    bad_data["data"]["cancelled_at"] = "yesterday"
    assert field_errors(await post("/events", json=bad_data)) == {
        "body.data.reason": "missing",
        "body.data.cancelled_at": "datetime_from_date_parsing",
    }

    bad_envelope = cancellation(specversion="0.3", subject="")
    del bad_envelope["id"]
    assert set(field_errors(await post("/events", json=bad_envelope))) == {
        "body.id",
        "body.specversion",
        "body.subject",
    }

    wrong_key = cancellation("ord_C", subject="ord_D")
    errors = (await post("/events", json=wrong_key)).json()["errors"]
    assert [(e["field"], e["code"]) for e in errors] == [("body.subject", "subject_mismatch")]
    assert "data.order_id ('ord_C')" in errors[0]["message"]

    assert field_errors(await post("/events", content=b"{not json", headers=HEADERS)) == {
        "body": "json_invalid"
    }
    assert field_errors(await post("/events", json=[cancellation()])) == {"body": "object_type"}

    as_text = await post("/events", content=b"{}", headers={"content-type": "text/plain"})
    assert as_text.status_code == 415
    batch = await post(
        "/events",
        json=[cancellation()],
        headers={"content-type": "application/cloudevents-batch+json"},
    )
    assert batch.status_code == 415
    huge = cancellation()
    huge["data"]["reason"] = "x" * MAX_EVENT_BYTES
    too_large = await post("/events", json=huge)
    assert too_large.status_code == 413
    assert too_large.json()["type"].endswith("/event-too-large")

    # Nothing of the above reached the outbox.
    assert await service.runtime.pool.fetchval("SELECT count(*) FROM outbox") == 0


@pytest.mark.parametrize(("key", "status"), [(None, 401), ("reader", 403), ("publisher", 202)])
async def test_publishing_needs_the_events_write_scope(
    settings: Settings, start_service: Any, key: str | None, status: int
) -> None:
    scoped = OrderguardSettings(
        **{
            **settings.model_dump(),
            "api_keys": {"reader": ["orders:read"], "publisher": ["events:write"]},
        }
    )
    service = await start_service(INGEST, roles=frozenset({"api"}), settings_=scoped)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_app(service.runtime)), base_url="http://order"
    ) as client:
        response = await client.post(
            "/events", json=cancellation(), headers={"X-API-Key": key} if key else {}
        )
    assert response.status_code == status, response.text


async def test_a_payment_provider_without_kafka_pays_an_order_over_http(
    settings: Settings,
    start_service,  # type: ignore[no-untyped-def]
) -> None:
    """The order service mounts POST /events for the payment events: the fact goes onto
    payments.events through the outbox, its consumer pays the order, a retry changes nothing."""
    from testkit import ORDER_BODY

    from orderguard.services.order.bootstrap import DEFINITION as ORDER

    order = await start_service(ORDER)
    await order.wait_assigned()
    placed = await order.client.post("/orders", json=ORDER_BODY)
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    payment = {
        "specversion": "1.0",
        "id": f"pay-evt-{order_id}",
        "type": "payment.succeeded.v1",
        "source": "/payments/alipay",
        "subject": order_id,
        "time": "2026-11-22T08:01:30Z",
        "data": {
            "order_id": order_id,
            "payment_id": "pay-1",
            "amount": placed.json()["total_amount"],
            "provider": "alipay",
            "occurred_at": "2026-11-22T08:01:30Z",
        },
    }
    first = await order.client.post("/events", json=payment, headers=HEADERS)
    assert first.status_code == 202, first.text
    assert first.json()["topic"] == settings.topic_prefix + "payments.events"
    again = await order.client.post("/events", json=payment, headers=HEADERS)
    assert again.status_code == 202 and again.headers.get("Idempotent-Replayed") == "true"

    async def paid() -> bool:
        return (await order.client.get(f"/orders/{order_id}")).json()["status"] == "paid"

    await wait_until(paid, what="the order paid from the HTTP-ingested payment")
    records = await read_topic(settings, settings.topic_prefix + "payments.events")
    assert [r.envelope.id for r in records] == [payment["id"]]
    wrong_type = {**payment, "id": "x-1", "type": "order.cancelled.v1"}
    refused = await order.client.post("/events", json=wrong_type, headers=HEADERS)
    assert refused.status_code == 422 and "event-type-not-accepted" in refused.text


async def test_a_nul_character_anywhere_in_the_event_is_a_422_naming_where(
    start_service: Any,
) -> None:
    """PostgreSQL text cannot hold NUL: refused at the door, field named, never a 500."""
    service = await start_service(INGEST, roles=frozenset({"api"}))
    data = cancellation()["data"]
    for changes, field in [
        ({"id": "evt\x00"}, "body.id"),
        ({"source": "/x\x00"}, "body.source"),
        ({"data": {**data, "reason": "a\x00b"}}, "body.data.reason"),
        ({"data": {**data, "k\x00": 1}}, "body.data.k\x00"),
    ]:
        response = await service.client.post(
            "/events", json=cancellation(**changes), headers=HEADERS
        )
        assert field_errors(response) == {field: "value_error"}
