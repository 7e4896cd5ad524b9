"""Aftersales end to end, on the real broker and database, through HTTP and Kafka: order facts
learnt from orders.events (redelivery harmless), cases opened and moved over HTTP with their
events on aftersales.events, refunds capped and issued once, repeated refunds and first-response
SLA breaches detected, evidence limits, and a restart that loses nothing."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from orderflow import paid_order_events as order_events
from testkit import RunningService, events_of_type, publish_event, tuned, wait_until

from orderguard.services.aftersales.bootstrap import DEFINITION as AFTERSALES
from orderguard.services.aftersales.settings import AftersalesSettings
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.logistics import ShipmentDelivered
from orderguard.shared.http.auth import acting_person_headers
from orderguard.shared.settings import Settings


class Shop:
    """The aftersales service as the storefront and agents use it, plus its topics."""

    def __init__(self, settings: Settings, service: RunningService) -> None:
        self.settings = settings
        self.service = service

    @property
    def client(self) -> Any:
        return self.service.client

    def topic(self, base: str) -> str:
        return self.settings.topic_prefix + base

    async def publish_order(self, order_id: str, **kwargs: Any) -> list[Envelope]:
        envelopes = order_events(order_id, **kwargs)
        for envelope in envelopes:
            await publish_event(self.settings, self.topic("orders.events"), envelope)
        return envelopes

    async def open_case(self, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        """Open a case once aftersales has learnt the order (it learns it from Kafka)."""
        headers = {"Idempotency-Key": key or uuid.uuid4().hex}

        async def opened() -> Any:
            response = await self.client.post("/cases", json=body, headers=headers)
            # Not learnt yet (404), or its placement learnt before its payment (order-not-paid).
            if response.status_code == 404 or "order-not-paid" in response.text:
                return None
            assert response.status_code == 201, response.text
            return response.json()

        return await wait_until(opened, what=f"a case on {body['order_id']}")  # type: ignore[no-any-return]

    async def refund(self, case_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Refund once aftersales has learnt the order's payment: a refund case opens on the
        placement alone, and the payment may come in a later batch."""

        async def refunded() -> Any:
            response = await self.client.post(f"/cases/{case_id}/refunds", json=body)
            if "order-not-paid" in response.text:
                return None
            assert response.status_code == 201, response.text
            return response.json()

        return await wait_until(refunded, what=f"a refund on {case_id}")  # type: ignore[no-any-return]

    async def events(self, base: str, event_type: str) -> list[Envelope]:
        return await events_of_type(self.settings, self.topic(base), event_type)

    async def anomalies(self, rule: str) -> list[dict[str, Any]]:
        found = await self.events("anomalies.detected", "anomaly.detected.v1")
        return [e.data for e in found if e.data["rule"] == rule]


async def start_shop(start_service: Any, settings: Settings) -> Shop:
    service = await start_service(AFTERSALES, settings_=settings)
    await service.wait_assigned()
    return Shop(settings, service)


@pytest.fixture
def aftersales_settings(settings: Settings, tmp_path: Path) -> Settings:
    detectors = tmp_path / "detectors.yaml"
    # A tiny first-response SLA (priority P4 gets a long one) and an idle clock that follows
    # the wall quickly, so a silent case breaches within the test.
    detectors.write_text(
        "rules:\n"
        "  case.sla_breached:\n"
        "    params: {first_response_s: 1}\n"
        "    overrides:\n"
        "      - match: {priority: P4}\n"
        "        params: {first_response_s: 3600}\n"
    )
    return tuned(
        settings,
        detectors_file=str(detectors),
        detector_idle_after_s=0.3,
        detector_allowed_lateness_s=0.0,
        aftersales={
            "attachments_dir": str(tmp_path / "attachments"),
            "attachment_max_bytes": 1024,
        },
    )


async def test_cases_and_refunds_over_http_and_kafka_exactly_once(
    aftersales_settings: Settings, start_service: Any
) -> None:
    shop = await start_shop(start_service, aftersales_settings)
    placed, paid = await shop.publish_order("ord-A")
    # Redelivery: the same events again, and the payment resent under a new event id.
    await publish_event(shop.settings, shop.topic("orders.events"), placed)
    await publish_event(shop.settings, shop.topic("orders.events"), paid)
    await publish_event(
        shop.settings,
        shop.topic("orders.events"),
        Envelope(type=paid.type, source=paid.source, subject=paid.subject, data=paid.data),
    )
    body = {"order_id": "ord-A", "case_type": "return", "lines": [{"sku": "MUG", "quantity": 2}]}
    case = await shop.open_case(body, key="open-A")
    replayed = await shop.client.post("/cases", json=body, headers={"Idempotency-Key": "open-A"})
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json()["case_id"] == case["case_id"]
    assert case["state"] == "approved", "within the 7-day window: approved without a reason"
    assert case["customer_id"] == "cust-1" and case["channel"] == "web"
    assert [e["what"] for e in case["timeline"]] == ["opened", "approve"]
    case_id = case["case_id"]

    opened = await wait_until(
        lambda: shop.events("aftersales.events", "case.opened.v1"), what="case.opened.v1"
    )
    assert [e.data["case_id"] for e in opened] == [case_id]
    assert opened[0].subject == case_id

    # More units than ordered, and a SKU the order does not have: 422 naming the line.
    too_many = await shop.client.post(
        "/cases",
        json={
            "order_id": "ord-A",
            "case_type": "exchange",
            "reason": "x",
            "lines": [{"sku": "TEA", "quantity": 2}],
        },
    )
    assert too_many.status_code == 422 and too_many.json()["sku"] == "TEA"

    # A refund before the goods are back is not allowed: 409 naming the current state.
    early = await shop.client.post(
        f"/cases/{case_id}/refunds",
        json={"lines": [{"sku": "MUG", "quantity": 2, "amount": "79.80"}], "reason": "returned"},
    )
    assert early.status_code == 409, early.text
    assert early.json()["current_state"] == "approved"
    received = await shop.client.post(
        f"/cases/{case_id}/actions",
        json={"action": "receive_goods"},
        headers=acting_person_headers("gao", "Gao Fei"),  # a person through the console
    )
    assert received.status_code == 200 and received.json()["state"] == "goods_received"
    # The case's timeline names the person with the display name they had.
    assert received.json()["timeline"][-1]["actor"] == {
        "kind": "person",
        "id": "gao",
        "name": "Gao Fei",
    }

    over = await shop.client.post(
        f"/cases/{case_id}/refunds",
        json={"lines": [{"sku": "MUG", "quantity": 2, "amount": "79.81"}], "reason": "returned"},
    )
    assert over.status_code == 422, over.text
    problem = over.json()
    assert problem["type"].endswith("/refund-above-paid")
    assert (problem["sku"], problem["paid"], problem["remaining"]) == ("MUG", "79.80", "79.80")

    body = {"lines": [{"sku": "MUG", "quantity": 2, "amount": "79.80"}], "reason": "returned"}
    first = await shop.client.post(
        f"/cases/{case_id}/refunds", json=body, headers={"Idempotency-Key": "refund-1"}
    )
    assert first.status_code == 201, first.text
    retried = await shop.client.post(
        f"/cases/{case_id}/refunds", json=body, headers={"Idempotency-Key": "refund-1"}
    )
    assert retried.status_code == 201 and retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json()["refunds"] == first.json()["refunds"]
    again = await shop.client.post(
        f"/cases/{case_id}/refunds", json=body, headers={"Idempotency-Key": "refund-2"}
    )
    assert again.status_code == 409 and again.json()["type"].endswith("/already-refunded")
    # Another action on the same line is a new refund, within what is left (nothing).
    more = await shop.client.post(
        f"/cases/{case_id}/refunds",
        json={
            "lines": [{"sku": "MUG", "quantity": 1, "amount": "0.01", "action": "compensation"}],
            "reason": "sorry",
        },
    )
    assert more.status_code == 422 and more.json()["remaining"] == "0.00"

    [refund] = first.json()["refunds"]
    issued = await wait_until(
        lambda: shop.events("aftersales.events", "refund.issued.v1"), what="refund.issued.v1"
    )
    assert [e.data["refund_id"] for e in issued] == [refund["refund_id"]]
    assert issued[0].data["amount"] == "79.80" and issued[0].data["customer_id"] == "cust-1"

    closed = await shop.client.post(f"/cases/{case_id}/actions", json={"action": "close"})
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    notifications = await wait_until(
        lambda: shop.events("notifications.requests", "notification.requested.v1"),
        what="notifications",
    )
    closed_events = await wait_until(
        lambda: shop.events("aftersales.events", "case.closed.v1"), what="case.closed.v1"
    )
    assert closed_events[0].data["case_id"] == case_id
    templates = sorted(n.data["template"] for n in notifications)
    assert templates.count("refund.issued") == 1
    assert "case.updated" in templates
    assert all(n.subject == "cust-1" for n in notifications)

    found = (await shop.client.get("/cases", params={"order_id": "ord-A", "type": "return"})).json()
    assert [c["case_id"] for c in found] == [case_id]
    assert (await shop.client.get("/cases", params={"state": "requested"})).json() == []

    # The redelivered and resent order events changed nothing: one order, paid once.
    row = await shop.service.runtime.pool.fetchrow(
        "SELECT paid_amount, (SELECT count(*) FROM known_order_lines WHERE order_id = 'ord-A')"
        " AS lines FROM known_orders WHERE order_id = 'ord-A'"
    )
    assert (row["paid_amount"], row["lines"]) == (Decimal("137.80"), 2)


async def test_repeated_refunds_by_one_customer_raise_refund_repeated(
    aftersales_settings: Settings, start_service: Any
) -> None:
    shop = await start_shop(start_service, aftersales_settings)
    for n in range(3):
        await shop.publish_order(f"ord-R{n}", customer="cust-risky")
        case = await shop.open_case(
            {
                "order_id": f"ord-R{n}",
                "case_type": "refund",
                "reason": "not as described",
                "priority": "P4",
                "lines": [{"sku": "TEA", "quantity": 1}],
            }
        )
        for action in ("approve",):
            response = await shop.client.post(
                f"/cases/{case['case_id']}/actions", json={"action": action}
            )
            assert response.status_code == 200, response.text
        await shop.refund(
            case["case_id"],
            {"lines": [{"sku": "TEA", "quantity": 1, "amount": "58.00"}], "reason": "refund"},
        )
        if n < 2:
            await wait_until(
                lambda n=n: _count(shop, "refund.issued.v1", n + 1), what=f"{n + 1} refunds issued"
            )
    [anomaly] = await wait_until(lambda: shop.anomalies("refund.repeated"), what="refund.repeated")
    assert anomaly["team"] == "risk" and anomaly["labels"]["customer_id"] == "cust-risky"
    assert "3 refunds" in anomaly["summary"]


async def _count(shop: Shop, event_type: str, n: int) -> bool:
    return len(await shop.events("aftersales.events", event_type)) >= n


async def test_a_silent_case_breaches_its_sla_and_a_response_resolves_it(
    aftersales_settings: Settings, start_service: Any
) -> None:
    shop = await start_shop(start_service, aftersales_settings)
    await shop.publish_order("ord-S")
    # P4 has an hour: an agent answers at once, so it never breaches.
    answered = await shop.open_case(
        {
            "order_id": "ord-S",
            "case_type": "repair",
            "reason": "handle broke",
            "priority": "P4",
            "lines": [{"sku": "MUG", "quantity": 1}],
        }
    )
    commented = await shop.client.post(
        f"/cases/{answered['case_id']}/comments", json={"note": "we will collect it tomorrow"}
    )
    assert commented.status_code == 200 and commented.json()["first_response_at"] is not None
    silent = await shop.open_case(
        {"order_id": "ord-S", "case_type": "complaint", "reason": "courier was rude"}
    )
    assert silent["state"] == "intake"
    assert silent["first_response_due_at"] is not None

    [firing] = await wait_until(
        lambda: shop.anomalies("case.sla_breached"), timeout=20, what="breach"
    )
    assert firing["status"] == "firing" and firing["team"] == "customer_service"
    assert firing["labels"]["case_id"] == silent["case_id"]

    moved = await shop.client.post(
        f"/cases/{silent['case_id']}/actions",
        json={"action": "collect_evidence", "note": "photos?"},
    )
    assert moved.status_code == 200, moved.text

    async def resolved() -> list[dict[str, Any]]:
        found = await shop.anomalies("case.sla_breached")
        return [a for a in found if a["status"] == "resolved"]

    [done] = await wait_until(resolved, what="the breach resolved")
    assert done["fingerprint"] == firing["fingerprint"]
    pool = shop.service.runtime.pool

    async def nothing_due() -> bool:
        return not await pool.fetchval(
            "SELECT count(*) FROM detector_deadlines WHERE rule = 'case.sla_breached'"
        )

    # The answered case's deadline was cancelled by the comment, the silent one's swept.
    await wait_until(nothing_due, what="no first-response deadline left")
    assert len(await shop.anomalies("case.sla_breached")) == 2

    # The complaint flow to the end, with an illegal step on the way.
    illegal = await shop.client.post(
        f"/cases/{silent['case_id']}/actions", json={"action": "score", "satisfaction": 5}
    )
    assert illegal.status_code == 409
    assert illegal.json()["current_state"] == "evidence"
    assert "evidence" in illegal.json()["detail"]
    for action in ("investigate", "resolve", "request_feedback", "visit"):
        step = await shop.client.post(
            f"/cases/{silent['case_id']}/actions", json={"action": action, "note": f"{action} done"}
        )
        assert step.status_code == 200, step.text
    scored = await shop.client.post(
        f"/cases/{silent['case_id']}/actions", json={"action": "score", "satisfaction": 4}
    )
    assert scored.json()["state"] == "closed" and scored.json()["satisfaction"] == 4


async def test_evidence_attachments_with_type_and_size_limits(
    aftersales_settings: Settings, start_service: Any
) -> None:
    shop = await start_shop(start_service, aftersales_settings)
    await shop.publish_order("ord-E")
    case = await shop.open_case(
        {"order_id": "ord-E", "case_type": "complaint", "reason": "scratched", "priority": "P4"}
    )
    url = f"/cases/{case['case_id']}/attachments"
    photo = b"\x89PNG\r\n\x1a\n" + b"x" * 100
    stored = await shop.client.post(
        url,
        params={"filename": "scratch.png"},
        content=photo,
        headers={"Content-Type": "image/png"},
    )
    assert stored.status_code == 201, stored.text
    attachment = stored.json()
    assert attachment["sha256"] == hashlib.sha256(photo).hexdigest()
    assert attachment["size_bytes"] == len(photo) and attachment["storage"] == "database"
    local = Path(shop.settings.section(AftersalesSettings).attachments_dir)
    assert not await asyncio.to_thread(local.exists)  # nothing on a local disk
    downloaded = await shop.client.get(f"{url}/{attachment['attachment_id']}")
    assert downloaded.status_code == 200 and downloaded.content == photo
    assert downloaded.headers["content-type"] == "image/png"
    assert "scratch.png" in downloaded.headers["content-disposition"]
    missing = await shop.client.get(f"{url}/att_nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["attachment_id"] == "att_nope"

    wrong_type = await shop.client.post(
        url,
        params={"filename": "x.exe"},
        content=b"MZ",
        headers={"Content-Type": "application/x-msdownload"},
    )
    assert wrong_type.status_code == 415 and "image/png" in wrong_type.json()["accepted"]
    too_big = await shop.client.post(
        url,
        params={"filename": "big.png"},
        content=b"x" * 1025,
        headers={"Content-Type": "image/png"},
    )
    assert too_big.status_code == 413 and too_big.json()["max_bytes"] == 1024
    assert too_big.headers["content-type"].startswith("application/problem+json")
    referenced = await shop.client.post(
        f"{url}/references",
        json={
            "filename": "video.mp4",
            "content_type": "video/mp4",
            "size_bytes": 900,
            "sha256": "a" * 64,
            "url": "https://cdn.example.com/evidence/video.mp4",
        },
    )
    assert referenced.status_code == 201 and referenced.json()["storage"] == "url"
    elsewhere = await shop.client.get(f"{url}/{referenced.json()['attachment_id']}")
    assert elsewhere.status_code == 307
    assert elsewhere.headers["location"] == "https://cdn.example.com/evidence/video.mp4"
    big_reference = await shop.client.post(
        f"{url}/references",
        json={
            "filename": "v.mp4",
            "content_type": "video/mp4",
            "size_bytes": 5000,
            "sha256": "b" * 64,
            "url": "https://cdn.example.com/v.mp4",
        },
    )
    assert big_reference.status_code == 413
    unknown = await shop.client.post(
        "/cases/case_nope/attachments",
        params={"filename": "a.png"},
        content=b"x",
        headers={"Content-Type": "image/png"},
    )
    assert unknown.status_code == 404

    found = (await shop.client.get(f"/cases/{case['case_id']}")).json()
    assert [a["filename"] for a in found["attachments"]] == ["scratch.png", "video.mp4"]
    assert [e["what"] for e in found["timeline"]].count("evidence_attached") == 2


async def test_a_restart_mid_flow_loses_nothing(
    aftersales_settings: Settings, start_service: Any
) -> None:
    shop = await start_shop(start_service, aftersales_settings)
    await shop.publish_order("ord-1")
    case = await shop.open_case(
        {
            "order_id": "ord-1",
            "case_type": "refund",
            "reason": "late",
            "priority": "P4",
            "lines": [{"sku": "MUG", "quantity": 1}],
        }
    )
    await shop.service.stop()

    # While aftersales is down: another order, and its delivery long ago (outside the window).
    await shop.publish_order("ord-2", paid_ago=timedelta(days=20))
    delivered = ShipmentDelivered(
        shipment_id="shp-2",
        order_id="ord-2",
        carrier="sf-express",
        tracking_number="SF1",
        delivered_at=datetime.now(UTC) - timedelta(days=15),
    )
    await publish_event(
        shop.settings,
        shop.topic("logistics.events"),
        Envelope(
            type="shipment.delivered.v1",
            source="/test",
            subject="shp-2",
            data=delivered.model_dump(mode="json"),
        ),
    )

    shop = await start_shop(start_service, aftersales_settings)
    approved = await shop.client.post(
        f"/cases/{case['case_id']}/actions", json={"action": "approve"}
    )
    assert approved.status_code == 200, approved.text

    async def order_and_delivery_known() -> bool:
        """ord-2 placed and paid (orders.events) and delivered (logistics.events): learnt by
        two consumers, in either order, after the restart."""
        return bool(
            await shop.service.runtime.pool.fetchval(
                "SELECT 1 FROM known_orders JOIN order_deliveries USING (order_id)"
                " WHERE order_id = 'ord-2' AND paid_at IS NOT NULL"
            )
        )

    await wait_until(
        order_and_delivery_known, timeout=30, what="ord-2 and its delivery learnt after the restart"
    )
    no_reason = await shop.client.post(
        "/cases",
        json={"order_id": "ord-2", "case_type": "return", "lines": [{"sku": "TEA", "quantity": 1}]},
    )
    assert no_reason.status_code == 422 and no_reason.json()["type"].endswith("/reason-required")
    late = await shop.open_case(
        {
            "order_id": "ord-2",
            "case_type": "return",
            "reason": "tea was stale",
            "lines": [{"sku": "TEA", "quantity": 1}],
        }
    )
    assert late["state"] == "requested" and late["needs_review"] is True
    assert "delivery" in late["policy"]["explanation"]
    opened = await wait_until(
        lambda: _count(shop, "case.opened.v1", 2), what="both case.opened events"
    )
    assert opened
    assert len(await shop.events("aftersales.events", "case.opened.v1")) == 2
