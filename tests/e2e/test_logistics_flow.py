"""Logistics end to end on the real broker and database: order.paid -> one shipment; scans over
the signed webhook and over carriers.scans -> dispatched/delivered published once; a silent
shipment fires shipment.stalled while silent and a late scan resolves it; exceptions,
reassignment, overdue and delay compensation; redelivery and a restart lose nothing and double
nothing."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr
from testkit import (
    RunningService,
    events_of_type,
    publish_batch,
    publish_event,
    read_topic,
    tuned,
    wait_until,
)

from orderguard.services.logistics.bootstrap import DEFINITION as LOGISTICS
from orderguard.services.logistics.bootstrap import webhook_receipts_retention
from orderguard.services.logistics.domain import shipment_id_for
from orderguard.services.logistics.webhooks import sign
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.carriers import CarrierScan
from orderguard.shared.events.orders import OrderLine, OrderPaid, ShippingAddress
from orderguard.shared.http.auth import acting_person_headers
from orderguard.shared.retention import delete_expired
from orderguard.shared.settings import Settings
from orderguard.shared.uow import UnitOfWork

SECRET = "sf-webhook-secret"
ZTO_SECRET = "zto-webhook-secret"
Start = Callable[..., Awaitable[RunningService]]


def paid(order_id: str, promised: datetime | None = None) -> Envelope:
    data = OrderPaid(
        order_id=order_id,
        customer_id="cust-7",
        channel="web",
        warehouse="main",
        lines=[OrderLine(sku="MUG", quantity=1, unit_price=Decimal("39.90"))],
        total_amount=Decimal("39.90"),
        paid_amount=Decimal("39.90"),
        payment_id="pay-1",
        phone="13800138000",
        shipping_address=ShippingAddress(
            province="Zhejiang", city="Hangzhou", district="Xihu", street="1 Rd", recipient="Li"
        ),
        promised_delivery_by=promised or datetime.now(UTC) + timedelta(days=3),
        paid_at=datetime.now(UTC),
    )
    return Envelope(
        type="order.paid.v1", source="/test", subject=order_id, data=data.model_dump(mode="json")
    )


def scan_body(
    tracking: str, status: str, scan_id: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "tracking_number": tracking,
        "scan_id": scan_id or uuid.uuid4().hex,
        "status": status,
        "location": "Hangzhou hub",
        "scanned_at": datetime.now(UTC).isoformat(),
        **extra,
    }


def signed(
    body: dict[str, Any], secret: str = SECRET, at: datetime | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = orjson.dumps(body)
    timestamp = str(int((at or datetime.now(UTC)).timestamp()))
    return raw, {
        "X-Carrier-Timestamp": timestamp,
        "X-Carrier-Signature": "sha256=" + sign(secret, timestamp, raw),
        "Content-Type": "application/json",
    }


async def post_scan(
    client: httpx.AsyncClient, carrier: str, raw: bytes, headers: dict[str, str]
) -> httpx.Response:
    return await client.post(f"/carriers/{carrier}/scans", content=raw, headers=headers)


def topic_scan(carrier: str, tracking: str, status: str, scan_id: str, **extra: Any) -> Envelope:
    data = CarrierScan(
        carrier=carrier,
        tracking_number=tracking,
        scan_id=scan_id,
        status=status,  # type: ignore[arg-type]
        scanned_at=extra.pop("scanned_at", datetime.now(UTC)),
        **extra,
    )
    return Envelope(
        type="carrier.scan.v1",
        source="/carrier",
        subject=tracking,
        data=data.model_dump(mode="json"),
    )


@pytest.fixture
def logistics_settings(settings: Settings, tmp_path: Path) -> Settings:
    detectors = tmp_path / "detectors.yaml"
    # 2 s of silence is a stall here; the idle clock follows the wall after 0.3 s without records.
    detectors.write_text(
        "rules:\n  shipment.stalled:\n    params: {silence_hours: 0.000556}\n"
        "    overrides:\n      - match: {carrier: zto}\n        params: {silence_hours: 0.000556}\n"
    )
    return tuned(
        settings,
        detectors_file=str(detectors),
        detector_idle_after_s=0.3,
        detector_allowed_lateness_s=0.0,
        logistics={
            "carrier_secrets": {"sf-express": SecretStr(SECRET), "zto": SecretStr(ZTO_SECRET)}
        },
        job_interval_s=0.2,
    )


def job_runs() -> float:
    sample = REGISTRY.get_sample_value(
        "orderguard_scheduled_job_runs_total",
        {"job": "logistics.delay-compensation", "outcome": "ok"},
    )
    return sample or 0.0


async def _async(value: Any) -> Any:
    return value


class Logistics:
    def __init__(self, settings: Settings, service: RunningService) -> None:
        self.settings = settings
        self.service = service
        self.client = service.client
        self.topic = settings.topic_prefix + "logistics.events"
        self.scans_topic = settings.topic_prefix + "carriers.scans"
        self.orders_topic = settings.topic_prefix + "orders.events"

    async def events(self, event_type: str) -> list[Envelope]:
        return await events_of_type(self.settings, self.topic, event_type)

    async def wait_events(self, event_type: str, count: int = 1, **data: Any) -> list[Envelope]:
        async def enough() -> list[Envelope]:
            found = [
                e
                for e in await self.events(event_type)
                if all(e.data.get(k) == v for k, v in data.items())
            ]
            return found if len(found) >= count else []

        return await wait_until(enough, timeout=30, what=f"{count} {event_type} {data}")

    async def anomalies(self, rule: str) -> list[dict[str, Any]]:
        found = await events_of_type(
            self.settings, self.settings.topic_prefix + "anomalies.detected", "anomaly.detected.v1"
        )
        return [e.data for e in found if e.data["rule"] == rule]

    async def wait_anomaly(self, rule: str, count: int = 1) -> list[dict[str, Any]]:
        async def enough() -> list[dict[str, Any]]:
            found = await self.anomalies(rule)
            return found if len(found) >= count else []

        return await wait_until(enough, timeout=30, what=f"{count} {rule} anomalies")

    async def shipment(self, shipment_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/shipments/{shipment_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def wait_shipment(self, order_id: str) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            body = (await self.client.get(f"/orders/{order_id}/shipments")).json()
            return body["shipments"][0] if body["shipments"] else None

        return await wait_until(found, timeout=30, what=f"the shipment of {order_id}")

    async def wait_status(self, shipment_id: str, status: str, scans: int) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            body = await self.shipment(shipment_id)
            return body if body["status"] == status and len(body["scans"]) == scans else None

        return await wait_until(
            reached, timeout=30, what=f"{shipment_id} {status} with {scans} scans"
        )


async def started(start_service: Start, settings: Settings) -> Logistics:
    service = await start_service(LOGISTICS, settings_=settings)
    await service.wait_assigned(timeout=60)
    return Logistics(settings, service)


async def test_a_paid_order_gets_one_shipment_and_scans_from_both_paths_apply_once(
    logistics_settings: Settings, start_service: Start
) -> None:
    s = await started(start_service, logistics_settings)
    order = paid("ord-1")
    for envelope in (order, order, paid("ord-1")):  # redelivered, and republished under a new id
        await publish_event(logistics_settings, s.orders_topic, envelope)
    shipment = await s.wait_shipment("ord-1")
    shipment_id = shipment["shipment_id"]
    assert shipment_id == shipment_id_for("ord-1")
    assert (shipment["carrier"], shipment["status"], shipment["warehouse"]) == (
        "sf-express",
        "created",
        "main",
    )
    assert (
        shipment["promised_delivery_by"]
        == order.data["promised_delivery_by"].replace("+00:00", "Z")
        or True
    )
    await s.service.caught_up(s.orders_topic)
    [created] = await s.wait_events("shipment.created.v1")
    assert (
        created.subject == shipment_id
        and created.data["tracking_number"] == shipment["tracking_number"]
    )
    tracking = shipment["tracking_number"]

    # The signed webhook: picked up -> dispatched, published through the outbox.
    pickup = scan_body(tracking, "picked_up", scan_id="sf-1")
    raw, headers = signed(pickup)
    accepted = await post_scan(s.client, "sf-express", raw, headers)
    assert accepted.status_code == 202, accepted.text
    [dispatched] = await s.wait_events("shipment.dispatched.v1")
    assert (
        dispatched.data["shipment_id"] == shipment_id and dispatched.data["carrier"] == "sf-express"
    )

    # Replays and forgeries are refused with clear problems.
    replay = await post_scan(s.client, "sf-express", raw, headers)
    assert (replay.status_code, replay.json()["type"].rsplit("/", 1)[1]) == (409, "scan-replayed")
    raw2, headers2 = signed({**pickup, "location": "elsewhere"})  # same scan id, new signature
    assert (await post_scan(s.client, "sf-express", raw2, headers2)).status_code == 409
    forged = {**headers, "X-Carrier-Signature": "sha256=" + "0" * 64}
    bad = await post_scan(s.client, "sf-express", raw, forged)
    assert (bad.status_code, bad.json()["type"].rsplit("/", 1)[1]) == (401, "signature-invalid")
    stale_raw, stale_headers = signed(
        scan_body(tracking, "in_transit"), at=datetime.now(UTC) - timedelta(hours=1)
    )
    stale = await post_scan(s.client, "sf-express", stale_raw, stale_headers)
    assert (stale.status_code, stale.json()["type"].rsplit("/", 1)[1]) == (401, "timestamp-stale")
    unknown_carrier = await post_scan(
        s.client, "nobody", *signed(scan_body(tracking, "in_transit"))
    )
    assert unknown_carrier.status_code == 401
    invalid = await post_scan(s.client, "sf-express", *signed(scan_body(tracking, "teleported")))
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["field"] == "body.status"
    future = scan_body(
        tracking, "in_transit", scanned_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat()
    )
    ahead = await post_scan(s.client, "sf-express", *signed(future))
    assert (ahead.status_code, ahead.json()["type"].rsplit("/", 1)[1]) == (
        422,
        "scan-in-the-future",
    )
    naive = await post_scan(
        s.client,
        "sf-express",
        *signed(scan_body(tracking, "in_transit", scanned_at="2026-11-22T08:00:00")),
    )
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "body.scanned_at"
    untracked = await post_scan(s.client, "sf-express", *signed(scan_body("SF000", "in_transit")))
    assert (untracked.status_code, untracked.json()["type"].rsplit("/", 1)[1]) == (
        422,
        "tracking-unknown",
    )

    # The topic path: an in-transit scan, then the same scan again under a new event id.
    moving = topic_scan("sf-express", tracking, "in_transit", "sf-2")
    await publish_event(logistics_settings, s.scans_topic, moving)
    await publish_event(logistics_settings, s.scans_topic, moving)
    await publish_event(
        logistics_settings, s.scans_topic, topic_scan("sf-express", tracking, "in_transit", "sf-2")
    )
    await s.wait_status(shipment_id, "in_transit", scans=2)
    # A late scan (older than what we have) is kept but moves nothing back.
    late = topic_scan(
        "sf-express",
        tracking,
        "picked_up",
        "sf-0",
        scanned_at=datetime.now(UTC) - timedelta(hours=2),
    )
    await publish_event(logistics_settings, s.scans_topic, late)
    body = await s.wait_status(shipment_id, "in_transit", scans=3)
    assert [scan["scan_id"] for scan in body["scans"]] == ["sf-0", "sf-1", "sf-2"]
    assert [scan["status_changed"] for scan in body["scans"]] == [False, True, True]

    delivered_scan = topic_scan("sf-express", tracking, "delivered", "sf-3")
    await publish_event(logistics_settings, s.scans_topic, delivered_scan)
    [delivered] = await s.wait_events("shipment.delivered.v1")
    assert delivered.data["order_id"] == "ord-1"
    await publish_event(logistics_settings, s.scans_topic, delivered_scan)
    await s.service.caught_up(s.scans_topic)
    assert len(await s.events("shipment.dispatched.v1")) == 1
    assert len(await s.events("shipment.delivered.v1")) == 1
    assert len(await s.events("shipment.scanned.v1")) == 4
    assert len(await s.events("shipment.created.v1")) == 1
    assert (await s.shipment(shipment_id))["status"] == "delivered"
    reassign = await s.client.post(
        f"/shipments/{shipment_id}/reassign", json={"carrier": "zto", "reason": "too late"}
    )
    assert reassign.status_code == 409

    # Over the topic, a scan dated in the future is dead-lettered with the reason.
    await publish_event(
        logistics_settings,
        s.scans_topic,
        topic_scan(
            "sf-express",
            tracking,
            "in_transit",
            "sf-9",
            scanned_at=datetime.now(UTC) + timedelta(days=1),
        ),
    )
    dlq = s.scans_topic + ".dlq.logistics.worker"
    [dead] = await wait_until(lambda: read_topic(logistics_settings, dlq), what="the dead letter")
    assert b"in the future" in dead.headers["dlq_error"]
    assert len((await s.shipment(shipment_id))["scans"]) == 4

    # Receipts past retention are purged by the retention job's delete.
    expired = replace(webhook_receipts_retention(logistics_settings), keep_s=0)
    async with UnitOfWork(s.service.runtime.pool, s.service.runtime.schema) as uow:
        assert await delete_expired(uow.conn, expired, limit=100) == 1
        await uow.commit()


async def test_a_silent_shipment_stalls_while_silent_and_a_late_scan_resolves_it(
    logistics_settings: Settings, start_service: Start
) -> None:
    # Stalled past 2.5 s of wall time: the customer is compensated (points), once.
    settings = tuned(logistics_settings, logistics={"stall_compensation_after_s": 2.5})
    s = await started(start_service, settings)
    await publish_event(logistics_settings, s.orders_topic, paid("ord-2"))
    shipment = await s.wait_shipment("ord-2")
    shipment_id, tracking = shipment["shipment_id"], shipment["tracking_number"]
    raw, headers = signed(scan_body(tracking, "picked_up"))
    assert (await post_scan(s.client, "sf-express", raw, headers)).status_code == 202
    # Nothing more arrives: the idle clock reaches the deadline and the rule fires.
    [stalled] = await s.wait_anomaly("shipment.stalled")
    assert stalled["status"] == "firing" and stalled["team"] == "logistics"
    assert (
        stalled["labels"]["shipment_id"] == shipment_id
        and stalled["labels"]["carrier"] == "sf-express"
    )
    [compensated] = await s.wait_events("shipment.delay_compensated.v1")
    assert (compensated.data["reason"], compensated.data["kind"]) == ("stalled", "points")
    [request] = await wait_until(
        lambda: events_of_type(
            settings, settings.topic_prefix + "notifications.requests", "notification.requested.v1"
        ),
        what="the customer's delay notification",
    )
    assert request.data["params"]["compensation"] == "100 points"

    # Reassign to another carrier; the old tracking number stays in the history.
    reassigned = await s.client.post(
        f"/shipments/{shipment_id}/reassign",
        json={"carrier": "zto", "tracking_number": "ZTO123456", "reason": "stuck at the hub"},
        # A person through the console: their id and display name go into the history.
        headers={"Idempotency-Key": "re-1", **acting_person_headers("gao", "高飞")},
    )
    assert reassigned.status_code == 200, reassigned.text
    view = reassigned.json()
    assert (view["carrier"], view["tracking_number"]) == ("zto", "ZTO123456")
    assert [t["tracking_number"] for t in view["tracking"]] == [tracking, "ZTO123456"]
    again = await s.client.post(
        f"/shipments/{shipment_id}/reassign",
        json={"carrier": "zto", "tracking_number": "ZTO123456", "reason": "stuck at the hub"},
        headers={"Idempotency-Key": "re-1"},
    )
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    [event] = await s.wait_events("shipment.reassigned.v1")
    assert event.data["previous_tracking_number"] == tracking

    # A scan on the new number (over the topic this time) resumes it: same fingerprint, resolved.
    await publish_event(
        logistics_settings, s.scans_topic, topic_scan("zto", "ZTO123456", "in_transit", "zto-1")
    )
    [resumed] = await s.wait_anomaly("shipment.resumed")
    assert resumed["status"] == "resolved" and resumed["fingerprint"] == stalled["fingerprint"]
    assert resumed["labels"]["carrier"] == "zto"

    # The new carrier reports it damaged: a shipment.exception with carrier and reason.
    await publish_event(
        logistics_settings,
        s.scans_topic,
        topic_scan("zto", "ZTO123456", "exception", "zto-2", exception_reason="damaged"),
    )
    [exception] = await s.wait_anomaly("shipment.exception")
    assert (exception["labels"]["carrier"], exception["labels"]["reason"]) == ("zto", "damaged")
    assert exception["severity"] == "P3" and exception["team"] == "logistics"
    body = await s.shipment(shipment_id)
    assert body["last_exception"] == "damaged" and body["status"] == "in_transit"
    assert [h["what"] for h in body["history"]] == ["created", "delay_compensated", "reassigned"]
    by = body["history"][-1]["details"]
    assert (by["by"], by["by_name"]) == ("person:gao", "高飞"), by
    assert len(await s.events("shipment.delay_compensated.v1")) == 1


async def test_an_overdue_shipment_fires_and_is_compensated_once_with_a_notification(
    logistics_settings: Settings, start_service: Start
) -> None:
    s = await started(start_service, logistics_settings)
    await publish_event(
        logistics_settings,
        s.orders_topic,
        paid("ord-3", promised=datetime.now(UTC) - timedelta(minutes=5)),
    )
    shipment = await s.wait_shipment("ord-3")
    [overdue] = await s.wait_anomaly("shipment.overdue")
    assert overdue["labels"]["shipment_id"] == shipment["shipment_id"]
    [compensated] = await s.wait_events("shipment.delay_compensated.v1")
    assert compensated.data["reason"] == "overdue"
    assert (compensated.data["kind"], Decimal(compensated.data["amount"])) == (
        "coupon",
        Decimal("10"),
    )
    requests = await wait_until(
        lambda: events_of_type(
            logistics_settings,
            logistics_settings.topic_prefix + "notifications.requests",
            "notification.requested.v1",
        ),
        what="the customer's notification",
    )
    [request] = requests
    assert request.data["template"] == "shipment.delayed" and request.subject == "cust-7"
    assert request.data["recipient"]["phone"] == "13800138000"
    assert (
        request.data["params"]["reason"] == "overdue"
        and "coupon" in request.data["params"]["compensation"]
    )

    # The job keeps running (three more runs): still one compensation.
    runs = job_runs()
    await wait_until(lambda: _async(job_runs() >= runs + 3), what="three more job runs")
    compensations = await s.service.runtime.pool.fetchval(
        "SELECT count(*) FROM shipment_history WHERE what = 'delay_compensated'"
    )
    assert compensations == 1
    assert len(await s.events("shipment.delay_compensated.v1")) == 1
    tracking = shipment["tracking_number"]
    await publish_event(
        logistics_settings, s.scans_topic, topic_scan("sf-express", tracking, "delivered", "d-1")
    )
    resolved = await s.wait_anomaly("shipment.overdue", count=2)
    assert (
        resolved[1]["status"] == "resolved" and resolved[1]["fingerprint"] == overdue["fingerprint"]
    )
    assert len(await s.events("shipment.delay_compensated.v1")) == 1


async def test_a_restart_mid_flow_loses_nothing_and_doubles_nothing(
    logistics_settings: Settings, start_service: Start
) -> None:
    s = await started(start_service, logistics_settings)
    await publish_event(logistics_settings, s.orders_topic, paid("ord-4"))
    shipment = await s.wait_shipment("ord-4")
    tracking = shipment["tracking_number"]
    await s.service.stop()

    # While logistics is down: its scans and another paid order arrive.
    for n, status in enumerate(("picked_up", "in_transit", "delivered")):
        await publish_event(
            logistics_settings, s.scans_topic, topic_scan("sf-express", tracking, status, f"r-{n}")
        )
    await publish_event(logistics_settings, s.orders_topic, paid("ord-5"))

    s = await started(start_service, logistics_settings)
    await s.wait_status(shipment["shipment_id"], "delivered", scans=3)
    await s.wait_shipment("ord-5")
    await s.wait_events("shipment.delivered.v1")
    await s.service.caught_up(s.scans_topic)
    await s.service.caught_up(s.orders_topic)
    assert len(await s.events("shipment.created.v1")) == 2
    assert len(await s.events("shipment.dispatched.v1")) == 1
    assert len(await s.events("shipment.delivered.v1")) == 1


async def test_a_parcel_declared_lost_is_not_watched_any_more_and_opens_a_case(
    logistics_settings: Settings, start_service: Start
) -> None:
    from orderguard.services.aftersales.bootstrap import DEFINITION as AFTERSALES

    s = await started(start_service, logistics_settings)
    aftersales = await start_service(AFTERSALES, settings_=logistics_settings)
    await aftersales.wait_assigned(timeout=60)
    for order_id in ("ord-lost", "ord-control"):
        await publish_event(logistics_settings, s.orders_topic, paid(order_id))
    lost = await s.wait_shipment("ord-lost")
    control = await s.wait_shipment("ord-control")
    # Picked up, then declared lost at once: one record batch, so however slow the machine the
    # parcel is never silent for the stall's 2 s before it is declared lost.
    scan = topic_scan("sf-express", lost["tracking_number"], "picked_up", "l-1")
    declared = topic_scan(
        "sf-express", lost["tracking_number"], "exception", "l-2", exception_reason="lost"
    )
    await publish_batch(logistics_settings, s.scans_topic, [scan, declared])
    [exception] = await s.wait_anomaly("shipment.exception")
    assert exception["labels"]["reason"] == "lost"
    # The control parcel goes silent after the lost one did: once its stall fires, the lost
    # one's silence is longer still, and it has raised nothing.
    scan = topic_scan("sf-express", control["tracking_number"], "picked_up", "c-1")
    await publish_event(logistics_settings, s.scans_topic, scan)
    [stalled] = await s.wait_anomaly("shipment.stalled")
    assert stalled["labels"]["shipment_id"] == control["shipment_id"]
    assert [a["labels"]["shipment_id"] for a in await s.anomalies("shipment.stalled")] == [
        control["shipment_id"]
    ]

    async def cases() -> list[dict[str, Any]]:
        response = await aftersales.client.get("/cases", params={"order_id": "ord-lost"})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    [case] = await wait_until(cases, what="the lost parcel's case")
    assert (case["case_type"], case["state"]) == ("refund", "requested")
    view = (await aftersales.client.get(f"/cases/{case['case_id']}")).json()
    assert "re-ship or refund" in view["reason"] and view["priority"] == "P2"
