"""Inventory against the real broker and database: reservations exactly once, stock.low once."""

from __future__ import annotations

from testkit import cancelled, events_of_type, placed, publish, publish_event, wait_until

from orderguard.services.inventory.bootstrap import DEFINITION as INVENTORY
from orderguard.shared.envelope import Envelope
from orderguard.shared.settings import Settings


async def stock_of(client, sku: str) -> dict:  # type: ignore[no-untyped-def]
    response = await client.get(f"/stock/{sku}")
    assert response.status_code == 200, response.text
    return response.json()[0]


async def test_orders_reserve_stock_and_low_stock_fires_once(
    settings: Settings, start_service
) -> None:  # type: ignore[no-untyped-def]
    inventory = await start_service(INVENTORY)
    response = await inventory.client.put(
        "/stock/SKU-1/main", json={"on_hand": 10, "low_stock_threshold": 5}
    )
    assert response.status_code == 200, response.text
    assert response.json()["available"] == 10
    await inventory.wait_assigned()

    for n in range(4):  # 10 -> 7 -> 4 -> 1 -> fails: below threshold 5 from the second order on
        await publish_event(
            settings, settings.topic_prefix + "orders.events", placed(f"o-{n}", "SKU-1", 3)
        )

    async def reserved_nine() -> bool:
        return (await stock_of(inventory.client, "SKU-1"))["reserved"] == 9

    await wait_until(reserved_nine, what="three reservations")
    failures = await wait_until(
        lambda: events_of_type(
            settings, settings.topic_prefix + "inventory.events", "inventory.reservation_failed.v1"
        ),
        what="reservation failure",
    )
    # Orders are keyed by order id, so they may be applied in any order across partitions:
    # whichever came fourth found one unit left.
    assert len(failures) == 1 and failures[0].subject in {f"o-{n}" for n in range(4)}
    assert failures[0].data["shortages"] == [
        {"sku": "SKU-1", "warehouse": "main", "requested": 3, "available": 1}
    ]
    anomalies = await wait_until(
        lambda: events_of_type(
            settings, settings.topic_prefix + "anomalies.detected", "anomaly.detected.v1"
        ),
        what="stock.low anomaly",
    )
    assert len(anomalies) == 1
    anomaly = anomalies[0].data
    assert anomaly["rule"] == "stock.low"
    assert anomaly["labels"] == {
        "sku": "SKU-1",
        "warehouse": "main",
        "severity": "P3",
        "team": "warehouse",
    }


async def test_redelivered_order_events_reserve_and_release_once(
    settings: Settings, start_service
) -> None:  # type: ignore[no-untyped-def]
    inventory = await start_service(INVENTORY)
    await inventory.client.put("/stock/SKU-2/main", json={"on_hand": 100, "low_stock_threshold": 1})
    await inventory.wait_assigned()
    orders = settings.topic_prefix + "orders.events"
    event = placed("o-a", "SKU-2", 5)
    await publish_event(settings, orders, event)
    await publish_event(settings, orders, event)  # the same event id again
    await publish_event(
        settings, orders, placed("o-a", "SKU-2", 5)
    )  # a producer's duplicate with a new id
    cancel = cancelled("o-a")
    await publish_event(settings, orders, cancel)
    await publish_event(settings, orders, cancel)
    await publish_event(settings, orders, placed("o-b", "SKU-2", 1))  # another order

    # Orders are keyed by order id, so o-b may sit on another partition than o-a: wait until
    # every record on the topic is applied (the offsets stored with the effects), then count.
    await inventory.caught_up(orders)
    level = await stock_of(inventory.client, "SKU-2")
    assert (level["on_hand"], level["reserved"]) == (100, 1)
    rows = (await inventory.client.get("/reservations/o-a")).json()
    assert [(r["quantity"], r["state"]) for r in rows] == [(5, "released")]
    # What the reservations wrote, published by the relay after its commits: all of it, then.
    await inventory.outbox_sent()
    inventory_topic = settings.topic_prefix + "inventory.events"
    reserved = await events_of_type(settings, inventory_topic, "inventory.reserved.v1")
    assert sorted(e.subject for e in reserved) == ["o-a", "o-b"]
    assert len(await events_of_type(settings, inventory_topic, "inventory.released.v1")) == 1


async def test_malformed_record_goes_to_dead_letter_and_consumer_goes_on(
    settings: Settings, start_service
) -> None:  # type: ignore[no-untyped-def]
    inventory = await start_service(INVENTORY)
    await inventory.client.put("/stock/SKU-3/main", json={"on_hand": 10})
    await inventory.wait_assigned()
    orders = settings.topic_prefix + "orders.events"
    await publish(settings, orders, b"{not json", key=b"o-x", headers=[("trace", b"keep-me")])
    bad = placed("o-y", "SKU-3", 1).model_dump(mode="json")
    bad["data"]["lines"] = []  # valid envelope, invalid order.placed.v1
    await publish(
        settings,
        orders,
        Envelope(**bad).to_json(),
        key=b"o-y",
        headers=[("ce_type", b"order.placed.v1")],
    )
    await publish_event(settings, orders, placed("o-z", "SKU-3", 2))

    async def good_one_applied() -> bool:
        return (await stock_of(inventory.client, "SKU-3"))["reserved"] == 2

    await wait_until(good_one_applied, what="the good order after the bad ones")
    dlq = settings.topic_prefix + "orders.events.dlq.inventory.worker"
    letters = await wait_until(lambda: _read(settings, dlq), what="dead letters")
    reasons = sorted(r.headers["dlq_reason"].decode() for r in letters)
    assert reasons == ["invalid", "malformed"]
    malformed = next(r for r in letters if r.headers["dlq_reason"] == b"malformed")
    assert malformed.value == b"{not json"
    assert malformed.headers["trace"] == b"keep-me"  # original headers kept
    assert malformed.headers["dlq_error"]


async def _read(settings: Settings, topic: str):  # type: ignore[no-untyped-def]
    from testkit import read_topic

    return await read_topic(settings, topic)


async def test_restart_mid_stream_loses_nothing_and_applies_nothing_twice(
    settings: Settings, start_service
) -> None:  # type: ignore[no-untyped-def]
    inventory = await start_service(INVENTORY)
    await inventory.client.put(
        "/stock/SKU-4/main", json={"on_hand": 1000, "low_stock_threshold": 0}
    )
    await inventory.wait_assigned()
    orders = settings.topic_prefix + "orders.events"
    for n in range(60):
        await publish_event(settings, orders, placed(f"r-{n}", "SKU-4", 1))

    async def some_reserved() -> int:
        return (await stock_of(inventory.client, "SKU-4"))["reserved"]

    await wait_until(some_reserved, what="the first reservations")
    await inventory.stop()  # mid-stream: more orders arrive while it is down
    for n in range(60, 120):
        await publish_event(settings, orders, placed(f"r-{n}", "SKU-4", 1))

    restarted = await start_service(INVENTORY)

    async def all_reserved() -> bool:
        return (await stock_of(restarted.client, "SKU-4"))["reserved"] == 120

    await wait_until(all_reserved, timeout=30, what="all 120 reservations after the restart")
    reserved = await events_of_type(
        settings, settings.topic_prefix + "inventory.events", "inventory.reserved.v1"
    )
    assert sorted(e.subject for e in reserved) == sorted(f"r-{n}" for n in range(120)), (
        "each order reserved once"
    )
