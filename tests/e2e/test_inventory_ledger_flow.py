"""Inventory in depth against the real broker and database, through HTTP and Kafka: commit on
shipment once, shortage -> failure (+ the order service's customer notification), counts -> inventory.inconsistent,
restock -> stock.recovered resolving stock.low, a restart mid-flow losing nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from testkit import (
    ORDER_BODY,
    RunningService,
    cancelled,
    events_of_type,
    placed,
    publish_event,
    read_topic,
    wait_until,
)

from orderguard.services.inventory.bootstrap import DEFINITION as INVENTORY
from orderguard.services.notifier.bootstrap import DEFINITION as NOTIFIER
from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.orders import OrderShipped
from orderguard.shared.settings import Settings


def shipped(order_id: str, shipment_id: str = "shp-1") -> Envelope:
    data = OrderShipped(
        order_id=order_id,
        shipment_id=shipment_id,
        carrier="sf-express",
        tracking_number="SF1234567890123",
        shipped_at=datetime.now(UTC),
    )
    return Envelope(
        type="order.shipped.v1",
        source="/test",
        subject=order_id,
        data=data.model_dump(mode="json"),
    )


async def applied(service: RunningService, *event_ids: str) -> bool:
    """Every one of these events was applied by inventory's worker (its reservations consumer)."""
    async with service.runtime.pool.acquire() as conn:
        found = await conn.fetchval(
            "SELECT count(*) FROM applied_events WHERE group_id LIKE '%inventory.worker'"
            " AND event_id = ANY($1::text[])",
            list(event_ids),
        )
    return found == len(event_ids)


async def outbox_drained(service: RunningService) -> bool:
    async with service.runtime.pool.acquire() as conn:
        return not await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL")


async def published(settings: Settings, service: RunningService, topic: str, event_type: str):  # type: ignore[no-untyped-def]
    """Every event of a type on a topic, once the service's outbox has all been published."""
    await wait_until(lambda: outbox_drained(service), what="outbox published")
    return await events_of_type(settings, settings.topic_prefix + topic, event_type)


async def anomalies_of(settings: Settings, rule: str) -> list[dict[str, Any]]:
    found = await events_of_type(
        settings, settings.topic_prefix + "anomalies.detected", "anomaly.detected.v1"
    )
    return [e.data for e in found if e.data["rule"] == rule]


async def stock(service: RunningService, sku: str, warehouse: str = "main") -> dict[str, Any]:
    response = await service.client.get(f"/stock/{sku}")
    assert response.status_code == 200, response.text
    return next(level for level in response.json() if level["warehouse"] == warehouse)


async def ledger(service: RunningService, sku: str, warehouse: str = "main") -> list[dict]:  # type: ignore[type-arg]
    """The whole ledger, oldest first, read page by page."""
    entries: list[dict[str, Any]] = []
    before = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if before is not None:
            params["before"] = before
        response = await service.client.get(f"/stock/{sku}/{warehouse}/ledger", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        entries += page["entries"]
        before = page["next_before"]
        if before is None:
            return list(reversed(entries))


async def ledger_matches_stock(service: RunningService, sku: str) -> None:
    async with service.runtime.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT s.on_hand, s.reserved, sum(l.on_hand_delta) AS l_on_hand,"
            " sum(l.reserved_delta) AS l_reserved FROM stock s JOIN stock_ledger l"
            " USING (sku, warehouse) WHERE s.sku = $1 GROUP BY s.on_hand, s.reserved",
            sku,
        )
    assert (row["on_hand"], row["reserved"]) == (row["l_on_hand"], row["l_reserved"])


async def test_shipment_commits_once_and_a_later_cancel_releases_nothing(
    settings: Settings, start_service: Any
) -> None:
    inventory = await start_service(INVENTORY)
    response = await inventory.client.put(
        "/stock/SKU-C/main", json={"on_hand": 10, "low_stock_threshold": 0}
    )
    assert response.status_code == 200, response.text
    await inventory.wait_assigned()
    orders = settings.topic_prefix + "orders.events"
    place = placed("o-1", "SKU-C", 3)
    await publish_event(settings, orders, place)
    ship, ship_again = shipped("o-1"), shipped("o-1")  # the same fact under a new event id
    await publish_event(settings, orders, ship)
    await publish_event(settings, orders, ship)  # redelivered
    await publish_event(settings, orders, ship)  # and again
    await publish_event(settings, orders, ship_again)
    # After the shipment the goods are gone: this cancel must not put them back.
    cancel = cancelled("o-1")
    await publish_event(settings, orders, cancel)
    ghost = shipped("ghost", "shp-ghost")  # a shipment of an order inventory never saw
    await publish_event(settings, orders, ghost)
    await wait_until(
        lambda: applied(inventory, place.id, ship.id, ship_again.id, cancel.id, ghost.id),
        what="every order event applied",
    )

    level = await stock(inventory, "SKU-C")
    assert (level["on_hand"], level["reserved"], level["available"]) == (7, 0, 7)
    rows = (await inventory.client.get("/reservations/o-1")).json()
    assert [(r["sku"], r["quantity"], r["state"]) for r in rows] == [("SKU-C", 3, "committed")]
    assert [
        (e["movement"], e["on_hand_delta"], e["reserved_delta"], e["order_id"])
        for e in await ledger(inventory, "SKU-C")
    ] == [
        ("stock_set", 10, 0, None),
        ("reserved", 0, 3, "o-1"),
        ("committed", -3, -3, "o-1"),
    ]
    await ledger_matches_stock(inventory, "SKU-C")

    committed = await published(settings, inventory, "inventory.events", "inventory.committed.v1")
    assert [(e.subject, e.data["shipment_id"], e.data["lines"]) for e in committed] == [
        ("o-1", "shp-1", [{"sku": "SKU-C", "warehouse": "main", "quantity": 3}])
    ]
    assert await published(settings, inventory, "inventory.events", "inventory.released.v1") == []
    [unknown] = await anomalies_of(settings, "inventory.unknown_reservation")
    assert unknown["labels"]["order_id"] == "ghost" and unknown["labels"]["action"] == "commit"
    assert unknown["team"] == "warehouse" and unknown["source_event_id"] == ghost.id


async def test_shortage_fails_the_order_and_asks_to_tell_the_customer_once(
    settings: Settings, start_service: Any
) -> None:
    inventory = await start_service(INVENTORY)
    order = await start_service(ORDER)
    await inventory.client.put("/stock/SKU-E2E/main", json={"on_hand": 1})
    await inventory.wait_assigned()
    await order.wait_assigned()
    response = await order.client.post("/orders", json=ORDER_BODY)  # 3 of SKU-E2E
    assert response.status_code == 201, response.text
    order_id = response.json()["order_id"]

    async def failed() -> list[Envelope]:
        return await events_of_type(
            settings,
            settings.topic_prefix + "inventory.events",
            "inventory.reservation_failed.v1",
        )

    [failure] = await wait_until(failed, what="reservation failure")
    assert failure.data["shortages"] == [
        {"sku": "SKU-E2E", "warehouse": "main", "requested": 3, "available": 1}
    ]

    # The order service acts on it: the shortage lands on the order's timeline.
    async def on_timeline() -> bool:
        view = (await order.client.get(f"/orders/{order_id}")).json()
        return any(entry["what"] == "stock_reservation_failed" for entry in view["timeline"])

    await wait_until(on_timeline, what="the failure on the order's timeline")

    # The same order.placed again, and the same fact under a new event id.
    [placed_event] = await events_of_type(
        settings, settings.topic_prefix + "orders.events", "order.placed.v1"
    )
    again = Envelope(**{**placed_event.model_dump(), "id": "a-new-id"})
    orders = settings.topic_prefix + "orders.events"
    await publish_event(settings, orders, placed_event)
    await publish_event(settings, orders, again)
    await wait_until(lambda: applied(inventory, placed_event.id, again.id), what="re-sent orders")

    assert (
        len(
            await published(
                settings, inventory, "inventory.events", "inventory.reservation_failed.v1"
            )
        )
        == 1
    )
    records = [
        r
        for r in await read_topic(settings, settings.topic_prefix + "notifications.requests")
        if r.headers.get("ce_type") == b"notification.requested.v1"
    ]
    assert len(records) == 1, "one request per order (the order service's, with the hold)"
    request = records[0].envelope.data
    assert records[0].key == b"c-42", "keyed by the recipient"
    assert request["template"] == "order.out_of_stock"
    assert request["request_id"].startswith(f"order.out_of_stock:{order_id}:")
    assert request["recipient"]["kind"] == "customer"
    assert request["recipient"]["id"] == "c-42"
    assert request["recipient"]["phone"] == "13800138000"
    assert request["params"]["order_id"] == order_id
    assert request["params"]["skus"] == "SKU-E2E"
    assert request["params"]["what_you_can_do"]
    rows = (await inventory.client.get(f"/reservations/{order_id}")).json()
    assert [(r["quantity"], r["state"]) for r in rows] == [(3, "failed")]
    assert (await stock(inventory, "SKU-E2E"))["reserved"] == 0


async def test_counts_adjust_stock_and_disagreements_are_inconsistent(
    settings: Settings, start_service: Any
) -> None:
    inventory = await start_service(INVENTORY)
    await inventory.client.put("/stock/SKU-K/main", json={"on_hand": 10, "low_stock_threshold": 0})
    await inventory.wait_assigned()
    order = placed("o-k", "SKU-K", 6)
    await publish_event(settings, settings.topic_prefix + "orders.events", order)
    await wait_until(lambda: applied(inventory, order.id), what="the reservation")

    # A count finds 4 where 10 were expected: adjusted, and 6 reserved now exceed on hand.
    response = await inventory.client.post(
        "/stock/SKU-K/main/counts", json={"counted_on_hand": 4, "counted_by": "clerk-7"}
    )
    assert response.status_code == 201, response.text
    count = response.json()
    assert (count["expected_on_hand"], count["ledger_on_hand"], count["difference"]) == (
        10,
        10,
        -6,
    )
    assert (count["stock"]["on_hand"], count["stock"]["available"]) == (4, -2)

    # Someone fixes the stock row by hand, past the ledger; the next count catches it.
    async with inventory.runtime.pool.acquire() as conn:
        await conn.execute("UPDATE stock SET on_hand = 9 WHERE sku = 'SKU-K'")
    body = {"counted_on_hand": 9, "counted_by": "clerk-8"}
    headers = {"Idempotency-Key": "count-2"}
    second = await inventory.client.post("/stock/SKU-K/main/counts", json=body, headers=headers)
    retried = await inventory.client.post("/stock/SKU-K/main/counts", json=body, headers=headers)
    assert second.status_code == retried.status_code == 201
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json()["count_id"] == second.json()["count_id"]
    assert (second.json()["expected_on_hand"], second.json()["ledger_on_hand"]) == (9, 4)

    async def inconsistent() -> list[dict[str, Any]]:
        found = await anomalies_of(settings, "inventory.inconsistent")
        return found if len(found) >= 2 else []

    found = await wait_until(inconsistent, timeout=20, what="inventory.inconsistent anomalies")
    by_check = {a["labels"]["check"]: a for a in found}
    assert len(found) == 2 and set(by_check) == {"count", "ledger"}
    assert "counted 4" in by_check["count"]["summary"]
    assert "expected 10" in by_check["count"]["summary"]
    assert "says 9 on hand" in by_check["ledger"]["summary"]
    assert "sums to 4 on hand" in by_check["ledger"]["summary"]
    assert {a["team"] for a in found} == {"warehouse"}
    [negative] = await wait_until(
        lambda: anomalies_of(settings, "inventory.negative_available"), what="negative available"
    )
    assert "available is -2" in negative["summary"]
    movements = [(e["movement"], e["on_hand_delta"]) for e in await ledger(inventory, "SKU-K")]
    assert movements == [("stock_set", 10), ("reserved", 0), ("adjusted", -6), ("adjusted", 0)]


async def test_restock_resolves_low_stock_with_the_same_fingerprint(
    settings: Settings, start_service: Any, tmp_path: Path
) -> None:
    detectors = tmp_path / "detectors.yaml"
    detectors.write_text(
        "rules:\n  stock.low:\n    params: {threshold: 10, hysteresis: 2}\n    overrides:\n"
        "      - {match: {warehouse: north}, params: {threshold: 20}}\n"
    )
    configured = settings.model_copy(update={"detectors_file": str(detectors)})
    inventory = await start_service(INVENTORY, settings_=configured)
    notifier = await start_service(NOTIFIER, settings_=configured)
    await inventory.client.put("/stock/SKU-L/north", json={"on_hand": 30})
    await inventory.client.put("/stock/SKU-L/main", json={"on_hand": 30})
    response = await inventory.client.put(
        "/stock/SKU-L/main/threshold", json={"low_stock_threshold": 5}
    )
    assert response.status_code == 200, response.text
    views = {v["warehouse"]: v for v in (await inventory.client.get("/stock/SKU-L")).json()}
    assert (views["main"]["effective_threshold"], views["main"]["threshold_source"]) == (5, "sku")
    assert (views["north"]["effective_threshold"], views["north"]["threshold_source"]) == (
        20,
        "configuration",
    )
    assert views["north"]["hysteresis"] == 2
    await inventory.wait_assigned()
    await notifier.wait_assigned()

    # 30 - 27 = 3 available in main, below its own threshold of 5.
    order = placed("o-l", "SKU-L", 27)
    await publish_event(settings, settings.topic_prefix + "orders.events", order)
    [low] = await wait_until(lambda: anomalies_of(settings, "stock.low"), what="stock.low")
    assert low["status"] == "firing" and low["labels"]["warehouse"] == "main"

    # A receipt of 4 gives 7 available: not above 5 + 2, still low. Then 10 more: recovered.
    receipt = {"quantity": 4, "reference": "PO-1"}
    first = await inventory.client.post("/stock/SKU-L/main/receipts", json=receipt)
    assert first.status_code == 201, first.text
    assert first.json()["stock"]["available"] == 7 and first.json()["stock"]["low"] is False
    headers = {"Idempotency-Key": "po-2"}
    for _ in range(2):  # a retried receipt is received once
        restock = await inventory.client.post(
            "/stock/SKU-L/main/receipts", json={"quantity": 10}, headers=headers
        )
        assert restock.status_code == 201, restock.text
    assert (await stock(inventory, "SKU-L"))["on_hand"] == 44

    [recovered] = await wait_until(
        lambda: anomalies_of(settings, "stock.recovered"), what="stock.recovered"
    )
    assert recovered["status"] == "resolved"
    assert recovered["fingerprint"] == low["fingerprint"]
    assert recovered["labels"] == low["labels"]
    assert "17 available" in recovered["summary"]
    received = [e for e in await ledger(inventory, "SKU-L") if e["movement"] == "received"]
    assert [(e["on_hand_delta"], e["note"]) for e in received] == [(4, "PO-1"), (10, None)]

    # The router routes the firing, then the resolution to the same queue (its work item closes).
    await wait_until(lambda: outbox_drained(inventory), what="anomalies published")

    async def router_read_both() -> bool:
        return await notifier.consumed_on(notifier.runtime.topics.anomalies) >= 2

    await wait_until(router_read_both, what="the router consumed both anomalies")
    await wait_until(lambda: outbox_drained(notifier), what="routed anomalies published")

    async def routed_both() -> list[Envelope]:
        found = await events_of_type(
            settings, settings.topic_prefix + "queues.warehouse", "anomaly.routed.v1"
        )
        return found if len(found) >= 2 else []

    routed = await wait_until(routed_both, what="firing and resolution on queues.warehouse")
    assert [(r.data["anomaly"]["rule"], r.data["anomaly"]["status"]) for r in routed] == [
        ("stock.low", "firing"),
        ("stock.recovered", "resolved"),
    ]
    assert len({r.data["anomaly"]["fingerprint"] for r in routed}) == 1


async def test_a_restart_mid_flow_loses_nothing(settings: Settings, start_service: Any) -> None:
    inventory = await start_service(INVENTORY)
    await inventory.client.put("/stock/SKU-R/main", json={"on_hand": 100, "low_stock_threshold": 0})
    await inventory.wait_assigned()
    orders = settings.topic_prefix + "orders.events"
    for n in range(20):
        await publish_event(settings, orders, placed(f"r-{n}", "SKU-R", 1))

    async def some_reserved() -> int:
        return (await stock(inventory, "SKU-R"))["reserved"]

    await wait_until(some_reserved, what="the first reservations")
    await inventory.stop()
    # While inventory is down: shipments, cancellations and more orders.
    last = []
    for n in range(10):
        last.append(shipped(f"r-{n}", f"shp-{n}"))
        await publish_event(settings, orders, last[-1])
    for n in range(10, 15):
        last.append(cancelled(f"r-{n}"))
        await publish_event(settings, orders, last[-1])
    for n in range(20, 30):
        last.append(placed(f"r-{n}", "SKU-R", 1))
        await publish_event(settings, orders, last[-1])
    restarted = await start_service(INVENTORY)
    await wait_until(
        lambda: applied(restarted, *(e.id for e in last)), timeout=30, what="all events applied"
    )
    level = await stock(restarted, "SKU-R")
    # 10 shipped (on hand 90), 5 released, 15 still held (r-15..r-29).
    assert (level["on_hand"], level["reserved"]) == (90, 15)
    await ledger_matches_stock(restarted, "SKU-R")
    topic = "inventory.events"
    assert len(await published(settings, restarted, topic, "inventory.committed.v1")) == 10
    assert len(await published(settings, restarted, topic, "inventory.released.v1")) == 5
    reserved = await published(settings, restarted, topic, "inventory.reserved.v1")
    assert sorted(e.subject for e in reserved) == sorted(f"r-{n}" for n in range(30))
