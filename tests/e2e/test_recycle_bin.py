"""The order recycle bin through HTTP and Kafka, on the real embedded broker and PostgreSQL:
manual moves, after-sales events and anomalies, archive, purge, listing, counts, restarts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from testkit import (
    ORDER_BODY,
    RunningService,
    events_of_type,
    publish_event,
    read_topic,
    tuned,
    wait_until,
)

from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.aftersales import (
    CaseClosed,
    CaseLine,
    CaseOpened,
    RefundedLine,
    RefundIssued,
)
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.http.auth import acting_person_headers
from orderguard.shared.settings import Settings


def order_body(
    channel: str = "web",
    lines: list[tuple[str, int, str]] | None = None,
    member_level: str = "regular",
) -> dict[str, Any]:
    # A customer of its own per order: the same lines twice from one customer would be a real
    # order.duplicate, and that anomaly moves orders into the bin too.
    body = dict(
        ORDER_BODY,
        channel=channel,
        customer_id=f"c-{uuid.uuid4().hex[:8]}",
        member_level=member_level,
    )
    if lines:
        body["lines"] = [{"sku": s, "quantity": q, "unit_price": p} for s, q, p in lines]
    return body


async def place(service: RunningService, **kwargs: Any) -> str:
    response = await service.client.post("/orders", json=order_body(**kwargs))
    assert response.status_code == 201, response.text
    return str(response.json()["order_id"])


def aftersales_event(data: RefundIssued | CaseOpened | CaseClosed, type_: str) -> Envelope:
    return Envelope(
        type=type_,
        source="/test/aftersales",
        subject=data.case_id,
        data=data.model_dump(mode="json"),
    )


def refund(order_id: str, case_id: str = "case-1", refund_id: str = "rf-1") -> Envelope:
    return aftersales_event(
        RefundIssued(
            case_id=case_id,
            refund_id=refund_id,
            order_id=order_id,
            customer_id="c-42",
            lines=[RefundedLine(sku="SKU-E2E", quantity=1, amount=Decimal("19.90"))],
            amount=Decimal("19.90"),
            reason="arrived broken",
            issued_at=datetime.now(UTC),
        ),
        "refund.issued.v1",
    )


def case_opened(order_id: str, case_id: str, case_type: str = "refund") -> Envelope:
    return aftersales_event(
        CaseOpened(
            case_id=case_id,
            order_id=order_id,
            customer_id="c-42",
            case_type=case_type,  # type: ignore[arg-type]
            lines=[CaseLine(sku="SKU-E2E", quantity=1)],
            reason="wants the money back",
            opened_at=datetime.now(UTC),
        ),
        "case.opened.v1",
    )


def case_closed(order_id: str, case_id: str) -> Envelope:
    return aftersales_event(
        CaseClosed(
            case_id=case_id,
            order_id=order_id,
            customer_id="c-42",
            case_type="refund",
            resolution="refunded",
            closed_at=datetime.now(UTC),
        ),
        "case.closed.v1",
    )


def anomaly(rule: str, order_id: str, fingerprint: str) -> Envelope:
    data = AnomalyDetected(
        rule=rule,
        fingerprint=fingerprint,
        severity="P3",
        team="risk",
        labels={"order_id": order_id, "customer_id": "c-42"},
        summary=f"{rule} for {order_id}",
        event_time=datetime.now(UTC),
        detected_at=datetime.now(UTC),
        source_event_id="src-1",
    )
    return Envelope(
        type="anomaly.detected.v1",
        source="/test/detector",
        subject=fingerprint,
        data=data.model_dump(mode="json"),
    )


async def applied_of(settings: Settings, order: RunningService, topic: str, count: int) -> bool:
    """Whether the order worker has applied exactly `count` distinct events of `topic`."""
    ids = list({record.envelope.id for record in await read_topic(settings, topic)})
    applied = await order.runtime.pool.fetchval(
        "SELECT count(*) FROM applied_events WHERE group_id = $1 AND event_id = ANY($2::text[])",
        order.runtime.worker_group,
        ids,
    )
    return bool(applied == count)


def aftersales_topic(settings: Settings) -> str:
    return settings.topic_prefix + "aftersales.events"


async def entries(service: RunningService, order_id: str) -> list[dict[str, Any]]:
    response = await service.client.get(f"/orders/{order_id}/recycle-bin")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def entries_when(
    service: RunningService, order_id: str, state: str, causes: int = 1
) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]]:
        found = await entries(service, order_id)
        ok = found and found[0]["state"] == state and len(found[0]["history"]) >= causes
        return found if ok else []

    return await wait_until(check, what=f"{order_id} {state} with {causes} cause(s)")


async def timeline(service: RunningService, order_id: str) -> list[dict[str, Any]]:
    return (await service.client.get(f"/orders/{order_id}")).json()["timeline"]  # type: ignore[no-any-return]


def whats(entries_: list[dict[str, Any]]) -> list[str]:
    return [entry["what"] for entry in entries_]


async def bin_events(settings: Settings, type_: str, order_id: str) -> list[Envelope]:
    found = await events_of_type(settings, settings.topic_prefix + "orders.events", type_)
    return [e for e in found if e.subject == order_id]


async def test_manual_move_list_filter_and_restore(settings: Settings, start_service: Any) -> None:
    order = await start_service(ORDER)
    order_id = await place(order, channel="app")
    other = await place(order, channel="web")

    body = {"category": "deleted_by_mistake", "reason": "Operator deleted it by mistake"}
    moved = await order.client.post(f"/orders/{order_id}/recycle-bin", json=body)
    assert moved.status_code == 201, moved.text
    entry = moved.json()
    assert (entry["state"], entry["category"], entry["outcome"]) == (
        "in_bin",
        "deleted_by_mistake",
        "moved",
    )
    assert entry["moved_by"].startswith("api:")
    # The same cause again changes nothing; another cause joins the history.
    again = await order.client.post(f"/orders/{order_id}/recycle-bin", json=body)
    assert (again.status_code, again.json()["outcome"]) == (200, "already")
    other_cause = {"category": "complaint", "reason": "customer called twice"}
    added = await order.client.post(
        f"/orders/{order_id}/recycle-bin",
        json=other_cause,
        headers=acting_person_headers("zhou", "Zhou Min"),  # a person through the console
    )
    assert (added.status_code, added.json()["outcome"]) == (200, "reason_added")
    assert [c["category"] for c in added.json()["history"]] == ["deleted_by_mistake", "complaint"]
    # The cause keeps who gave it, with the name they had.
    assert added.json()["history"][-1]["actor"] == {
        "kind": "person",
        "id": "zhou",
        "name": "Zhou Min",
    }
    assert added.json()["entry_id"] == entry["entry_id"]
    moved_other = await order.client.post(
        f"/orders/{other}/recycle-bin", json={"category": "held", "reason": "waiting for stock"}
    )
    assert moved_other.status_code == 201

    bad = await order.client.post(
        f"/orders/{order_id}/recycle-bin", json={"category": "lost", "reason": "x"}
    )
    assert bad.status_code == 422
    unknown = await order.client.post("/orders/ord_nope/recycle-bin", json=body)
    assert unknown.status_code == 404

    # The order itself is untouched.
    view = (await order.client.get(f"/orders/{order_id}")).json()
    assert view["status"] == "placed"
    assert view["shipping_address"]["recipient"] == "Li Lei"

    listing = (await order.client.get("/recycle-bin")).json()
    assert [item["order_id"] for item in listing["items"]] == [other, order_id]  # newest first
    assert listing["next_cursor"] is None
    for query, expected in [
        ({"category": "deleted_by_mistake"}, [order_id]),
        ({"category": ["held", "deleted_by_mistake"]}, [other, order_id]),
        ({"channel": "app"}, [order_id]),
        ({"reason": "BY MISTAKE"}, [order_id]),
        ({"customer_type": "new"}, [other, order_id]),  # each its customer's first order
        ({"customer_type": "gold"}, []),
        ({"sku": "SKU-E2E"}, [other, order_id]),
        ({"sku": "SKU-OTHER"}, []),
        ({"state": "restored"}, []),
        ({"from": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}, []),
        ({"to": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}, [other, order_id]),
    ]:
        response = await order.client.get("/recycle-bin", params=query)
        assert response.status_code == 200, (query, response.text)
        assert [item["order_id"] for item in response.json()["items"]] == expected, query
    page = (await order.client.get("/recycle-bin", params={"limit": 1})).json()
    assert [item["order_id"] for item in page["items"]] == [other]
    page = (
        await order.client.get("/recycle-bin", params={"limit": 1, "cursor": page["next_cursor"]})
    ).json()
    assert ([item["order_id"] for item in page["items"]], page["next_cursor"]) == ([order_id], None)
    assert (await order.client.get("/recycle-bin", params={"cursor": "!!"})).status_code == 400

    restored = await order.client.post(
        f"/orders/{order_id}/recycle-bin/restore", json={"reason": "found the customer"}
    )
    assert restored.status_code == 200, restored.text
    assert (restored.json()["state"], restored.json()["order_status"]) == ("restored", "placed")
    not_in_bin = await order.client.post(f"/orders/{order_id}/recycle-bin/restore")
    assert not_in_bin.status_code == 409
    problem = not_in_bin.json()
    assert problem["type"].endswith("/not-in-recycle-bin")
    assert "not in the recycle bin" in problem["detail"] and "restored" in problem["detail"]
    assert problem["last_entry_state"] == "restored"
    never = await order.client.post(f"/orders/{await place(order)}/recycle-bin/restore")
    assert never.status_code == 409 and "never was" in never.json()["detail"]

    steps = await timeline(order, order_id)
    assert whats(steps) == [
        "placed",
        "moved_to_recycle_bin",
        "recycle_bin_reason_added",
        "restored_from_recycle_bin",
    ]
    assert steps[1]["actor"]["kind"] == "api" and steps[1]["note"] == body["reason"]
    assert steps[1]["event_type"] == "order.recycled.v1"
    assert steps[3]["note"] == "found the customer"
    assert (await order.client.get(f"/orders/{order_id}")).json()["status"] == "placed"

    recycled = await wait_until(lambda: bin_events(settings, "order.recycled.v1", order_id))
    assert recycled[0].data["category"] == "deleted_by_mistake"
    assert recycled[0].id == steps[1]["event_id"]
    restored_events = await wait_until(lambda: bin_events(settings, "order.restored.v1", order_id))
    assert len(restored_events) == 1 and len(recycled) == 1


async def test_refund_moves_the_order_once_and_case_close_archives_it(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER)
    order_id = await place(order)
    topic = aftersales_topic(settings)
    first = refund(order_id)
    await publish_event(settings, topic, first)
    [entry] = await entries_when(order, order_id, "in_bin")
    assert (entry["category"], entry["case_id"]) == ("refund", "case-1")
    assert entry["moved_by"] == "consumer:order.recycle-bin.aftersales"
    assert entry["history"][0]["event_id"] == first.id

    # Redelivery: the same event again, and the same refund under a new event id; then a marker
    # on the same key (the same partition: once it is applied, the copies before it were too).
    await publish_event(settings, topic, first)
    await publish_event(settings, topic, refund(order_id))
    await publish_event(settings, topic, case_opened(order_id, "case-1"))
    [entry] = await entries_when(order, order_id, "in_bin", causes=2)
    assert [c["category"] for c in entry["history"]] == ["refund", "refund"]
    assert [c["event_type"] for c in entry["history"]] == ["refund.issued.v1", "case.opened.v1"]
    steps = await timeline(order, order_id)
    assert whats(steps) == ["placed", "moved_to_recycle_bin", "recycle_bin_reason_added"]

    await publish_event(settings, topic, case_closed(order_id, "case-1"))
    [entry] = await entries_when(order, order_id, "archived", causes=2)
    assert entry["closed_reason"] == "case case-1 closed: refunded"
    # The same refund once more after the archive does not send the order back in.
    await publish_event(settings, topic, refund(order_id))
    await publish_event(settings, topic, case_closed(order_id, "case-1"))
    await publish_event(settings, topic, case_opened(order_id, "case-1", "repair"))  # marker
    await wait_until(
        lambda: applied_of(settings, order, topic, 7),
        what="every distinct after-sales event applied",
    )
    assert len(await entries(order, order_id)) == 1
    assert whats(await timeline(order, order_id)) == [
        "placed",
        "moved_to_recycle_bin",
        "recycle_bin_reason_added",
        "archived_in_recycle_bin",
    ]
    archived = await wait_until(lambda: bin_events(settings, "order.archived.v1", order_id))
    assert len(archived) == 1 and archived[0].data["case_id"] == "case-1"
    assert len(await bin_events(settings, "order.recycled.v1", order_id)) == 1

    # A return case on an order placed elsewhere is nothing to us (logged, not dead-lettered).
    await publish_event(settings, topic, case_opened("ord_elsewhere", "case-9", "return"))
    returned_id = await place(order)
    await publish_event(settings, topic, case_opened(returned_id, "case-2", "return"))
    [entry] = await entries_when(order, returned_id, "in_bin")
    assert (entry["category"], entry["case_id"]) == ("return", "case-2")


async def test_configured_anomalies_move_the_order_they_name(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER)
    duplicate = await place(order)
    low_stock = await place(order)
    topic = settings.topic_prefix + "anomalies.detected"
    await publish_event(settings, topic, anomaly("stock.low", low_stock, "fp-0"), key="k")
    await publish_event(settings, topic, anomaly("order.duplicate", duplicate, "fp-1"), key="k")
    await publish_event(settings, topic, anomaly("order.duplicate", duplicate, "fp-1"), key="k")
    [entry] = await entries_when(order, duplicate, "in_bin")
    assert entry["category"] == "abnormal"
    assert entry["moved_by"] == "rule:order.duplicate"
    assert entry["reason"] == f"order.duplicate for {duplicate}"
    await wait_until(
        lambda: applied_of(settings, order, topic, 3), what="the three anomalies applied"
    )
    assert len((await entries(order, duplicate))[0]["history"]) == 1
    assert await entries(order, low_stock) == []
    steps = await timeline(order, duplicate)
    assert whats(steps) == ["placed", "moved_to_recycle_bin"]
    assert steps[1]["actor"] == {"kind": "rule", "id": "order.duplicate", "name": "order.duplicate"}


async def test_the_later_order_of_a_real_duplicate_pair_lands_in_the_bin_and_is_restored(
    settings: Settings, start_service: Any
) -> None:
    # No made-up anomaly: the order.duplicate detector's own firing moves the order.
    order = await start_service(ORDER)
    await order.wait_assigned()
    body = order_body()
    placed = []
    for _ in range(2):
        response = await order.client.post("/orders", json=body)
        assert response.status_code == 201, response.text
        placed.append(response.json()["order_id"])
    first, later = placed
    [entry] = await entries_when(order, later, "in_bin")
    assert entry["category"] == "abnormal"
    assert entry["moved_by"] == "rule:order.duplicate"
    assert await entries(order, first) == []
    restored = await order.client.post(
        f"/orders/{later}/recycle-bin/restore", json={"reason": "the customer meant two"}
    )
    assert restored.status_code == 200, restored.text
    assert restored.json()["state"] == "restored"


async def test_customer_type_is_set_at_placement_new_returning_or_member_level(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER)
    body = order_body()
    first = await order.client.post("/orders", json=body)
    again = dict(body, lines=[{"sku": "SKU-OTHER", "quantity": 1, "unit_price": "1.00"}])
    second = await order.client.post("/orders", json=again)
    gold = await order.client.post("/orders", json=order_body(member_level="gold"))
    placed = [r.json()["order_id"] for r in (first, second, gold)]
    for order_id in placed:
        moved = await order.client.post(
            f"/orders/{order_id}/recycle-bin", json={"category": "other", "reason": "typed"}
        )
        assert moved.status_code == 201, moved.text
    listing = (await order.client.get("/recycle-bin")).json()["items"]
    assert {i["order_id"]: i["customer_type"] for i in listing} == dict(
        zip(placed, ["new", "returning", "gold"], strict=True)
    )
    by_type = (await order.client.get("/recycle-bin/stats?group_by=customer_type")).json()
    assert sorted((g["key"]["customer_type"], g["orders"]) for g in by_type["groups"]) == [
        ("gold", 1),
        ("new", 1),
        ("returning", 1),
    ]


async def test_quiet_entries_are_archived_then_purged_and_still_counted(
    settings: Settings, start_service: Any
) -> None:
    quick = tuned(
        settings,
        job_interval_s=0.1,
        order={"recycle_bin_quiet_period_s": 0.5, "recycle_bin_retention_s": 0.5},
    )
    order = await start_service(ORDER, settings_=quick)
    response = await order.client.post(
        "/orders", json=order_body(), headers={"Idempotency-Key": "place-1"}
    )
    order_id = response.json()["order_id"]
    moved = await order.client.post(
        f"/orders/{order_id}/recycle-bin", json={"category": "abnormal", "reason": "test order"}
    )
    assert moved.status_code == 201
    [entry] = await entries_when(order, order_id, "purged")
    assert entry["archived_at"] and entry["purged_at"]
    assert entry["closed_by"] == "rule:recycle-bin.quiet-period"

    view = (await order.client.get(f"/orders/{order_id}")).json()
    assert view["phone"] == ""
    assert view["shipping_address"] == {
        "province": "Zhejiang", "city": "Hangzhou", "district": "", "street": "",
        "recipient": "", "postal_code": None,
    }  # fmt: skip
    assert view["total_amount"] == "59.70" and view["lines"][0]["sku"] == "SKU-E2E"
    assert view["channel"] == "web"
    assert whats(view["timeline"]) == [
        "placed",
        "moved_to_recycle_bin",
        "archived_in_recycle_bin",
        "personal_data_purged",
    ]
    pool = order.runtime.pool
    purge = await pool.fetchrow("SELECT * FROM order_purges WHERE order_id = $1", order_id)
    assert purge["entry_id"] == entry["entry_id"] and "phone" in purge["purged_fields"]
    # No stored copy of the phone or address is left: the idempotent answer to POST /orders
    # and the sent order.placed.v1 in the outbox are gone.
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys") == 0
    assert not await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE convert_from(value, 'UTF8') LIKE '%13800138000%'"
    )

    stats = (await order.client.get("/recycle-bin/stats", params={"group_by": "category"})).json()
    assert stats["groups"] == [{"key": {"category": "abnormal"}, "orders": 1, "amount": "59.70"}]

    async def metrics_text() -> str:
        text = (await order.client.get("/metrics")).text
        # The gauge is measured by a job every interval: wait for a measure after the archive.
        return text if 'orderguard_recycle_bin_orders{category="abnormal"} 0.0' in text else ""

    exposition = await wait_until(metrics_text, what="the in-bin gauge measured")
    for move in ("moved", "archived", "purged"):
        assert (
            f'orderguard_recycle_bin_moves_total{{category="abnormal",move="{move}"}}' in exposition
        )
    purged = await wait_until(lambda: bin_events(settings, "order.purged.v1", order_id))
    assert purged[0].data["purged_fields"][0] == "phone"
    assert "13800138000" not in str(purged[0].data)


async def test_stats_by_week_sku_and_channel_on_a_known_data_set(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER)
    week1 = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)  # Monday of ISO week 2026-W47
    week2 = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)  # Monday of ISO week 2026-W48
    data = [  # channel, lines, category, moved at, member level
        ("web", [("SKU-A", 2, "10.00")], "refund", week1, "regular"),
        (
            "app",
            [("SKU-A", 1, "10.00"), ("SKU-B", 1, "5.00")],
            "return",
            week1 + timedelta(days=6),
            "gold",
        ),
        ("web", [("SKU-B", 3, "5.00")], "refund", week2, "regular"),
        ("pos", [("SKU-C", 1, "7.50")], "other", week2 + timedelta(days=1), "regular"),
    ]
    ids = []
    for channel, lines, category, at, level in data:
        order_id = await place(order, channel=channel, lines=lines, member_level=level)
        ids.append(order_id)
        response = await order.client.post(
            f"/orders/{order_id}/recycle-bin", json={"category": category, "reason": category}
        )
        assert response.status_code == 201
        await order.runtime.pool.execute(
            "UPDATE recycle_bin_entries SET moved_at = $2 WHERE order_id = $1", order_id, at
        )
    assert (await order.client.post(f"/orders/{ids[3]}/recycle-bin/restore")).status_code == 200

    async def stats(**params: Any) -> dict[str, Any]:
        response = await order.client.get("/recycle-bin/stats", params=params)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def groups(found: dict[str, Any]) -> list[tuple[dict[str, str], int, str]]:
        return [(g["key"], g["orders"], g["amount"]) for g in found["groups"]]

    assert groups(await stats(group_by="week")) == [
        ({"week": "2026-W47"}, 2, "35.00"),
        ({"week": "2026-W48"}, 2, "22.50"),
    ]
    assert groups(await stats(group_by="sku")) == [
        ({"sku": "SKU-A"}, 2, "30.00"),
        ({"sku": "SKU-B"}, 2, "20.00"),
        ({"sku": "SKU-C"}, 1, "7.50"),
    ]
    assert groups(await stats(group_by="channel")) == [
        ({"channel": "app"}, 1, "15.00"),
        ({"channel": "pos"}, 1, "7.50"),
        ({"channel": "web"}, 2, "35.00"),
    ]
    by_week_and_category = await stats(group_by=["week", "category"])
    assert groups(by_week_and_category) == [
        ({"week": "2026-W47", "category": "refund"}, 1, "20.00"),
        ({"week": "2026-W47", "category": "return"}, 1, "15.00"),
        ({"week": "2026-W48", "category": "other"}, 1, "7.50"),
        ({"week": "2026-W48", "category": "refund"}, 1, "15.00"),
    ]
    assert (by_week_and_category["total_orders"], by_week_and_category["total_amount"]) == (
        4,
        "57.50",
    )
    in_week2 = await stats(
        group_by=["sku", "channel"],
        **{"from": week2.isoformat(), "to": (week2 + timedelta(days=7)).isoformat()},
    )
    assert groups(in_week2) == [
        ({"sku": "SKU-B", "channel": "web"}, 1, "15.00"),
        ({"sku": "SKU-C", "channel": "pos"}, 1, "7.50"),
    ]
    assert in_week2["from"] == "2026-11-23T00:30:00Z"
    assert groups(await stats(group_by="category", state="in_bin", customer_type="gold")) == [
        ({"category": "return"}, 1, "15.00")
    ]
    assert groups(await stats(group_by="reason", sku="SKU-C")) == [({"reason": "other"}, 1, "7.50")]
    assert (await order.client.get("/recycle-bin/stats?group_by=colour")).status_code == 422
    naive = await order.client.get("/recycle-bin/stats", params={"from": "2026-11-23T00:00:00"})
    assert naive.status_code == 400


async def test_a_restart_mid_flow_loses_nothing(settings: Settings, start_service: Any) -> None:
    order = await start_service(ORDER)
    order_id = await place(order)
    await order.wait_assigned()
    topic = aftersales_topic(settings)
    await publish_event(settings, topic, refund(order_id, case_id="case-r", refund_id="rf-r"))
    await entries_when(order, order_id, "in_bin")
    await order.stop()

    # While the service is down: the case closes and the refund is redelivered.
    await publish_event(settings, topic, refund(order_id, case_id="case-r", refund_id="rf-r"))
    await publish_event(settings, topic, case_closed(order_id, "case-r"))

    order = await start_service(ORDER)
    [entry] = await entries_when(order, order_id, "archived")
    assert len(entry["history"]) == 1
    assert whats(await timeline(order, order_id)) == [
        "placed",
        "moved_to_recycle_bin",
        "archived_in_recycle_bin",
    ]
