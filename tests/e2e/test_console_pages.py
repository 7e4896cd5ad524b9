"""The console's live queue, after-sales cases, shipments, and the admins' routing page, on the
real broker and database: the queue's event stream names a new work item; a case moves a stage
and is refunded as the signed-in person, its evidence downloads; an overdue shipment is listed
and given to another carrier by name; only admins open routing, create and expire a silence
and re-send a failed delivery once per click."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
from orderflow import paid_order_events
from testkit import (
    CONSOLE_PASSWORD,
    RunningService,
    add_people,
    console_browser,
    console_calls_in_process,
    console_sign_in,
    csrf_in,
    publish_event,
    route_anomaly,
    served,
    tuned,
    wait_until,
    work_items_of,
)

from orderguard.services.aftersales.bootstrap import DEFINITION as AFTERSALES
from orderguard.services.logistics.bootstrap import DEFINITION as LOGISTICS
from orderguard.services.notifier.bootstrap import DEFINITION as NOTIFIER
from orderguard.services.notifier.console import people
from orderguard.services.notifier.settings import NotifierSettings
from orderguard.shared.settings import Settings

EVENT_WAIT_S = 30.0


async def next_event(lines: AsyncIterator[str]) -> tuple[str, str]:
    """The next server-sent event as (name, data)."""
    name, data = "message", ""
    async for line in lines:
        if line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data += line.removeprefix("data:").strip()
        elif line == "" and data:
            return name, data
    raise AssertionError("the event stream ended")


async def test_the_live_queue_tells_of_a_new_work_item_by_its_id(
    settings: Settings, start_service: Any
) -> None:
    notifier = await start_service(NOTIFIER)
    await notifier.wait_assigned()
    await add_people(notifier.runtime, ("wang", "Wang Wei", {"warehouse": "operator"}))
    async with console_browser(notifier) as wang:
        await console_sign_in(wang, "wang")
        session = wang.cookies.get("__Host-og_session")
    # A real port: an in-process transport hands over a response only once it has ended.
    async with (
        served(notifier.runtime) as base,
        httpx.AsyncClient(
            base_url=base, headers={"Cookie": f"__Host-og_session={session}"}, timeout=EVENT_WAIT_S
        ) as client,
        client.stream("GET", "/console/live") as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("retry:")  # the stream's baseline is taken
        await route_anomaly(settings, "fp-live", "stock.low", "warehouse")
        name, data = await asyncio.wait_for(next_event(lines), EVENT_WAIT_S)
    [item] = await work_items_of(notifier.client, team="warehouse")
    assert name == "queue" and item["id"] in json.loads(data)["items"], (name, data)


async def aftersales_with_a_paid_order(
    settings: Settings, start_service: Any, order_id: str
) -> RunningService:
    aftersales = await start_service(AFTERSALES)
    await aftersales.wait_assigned()
    for envelope in paid_order_events(order_id):
        await publish_event(settings, settings.topic_prefix + "orders.events", envelope)
    return aftersales


async def test_a_case_moves_a_stage_and_is_refunded_by_the_person(
    settings: Settings, start_service: Any
) -> None:
    order_id = f"o-{uuid.uuid4().hex[:8]}"
    aftersales = await aftersales_with_a_paid_order(settings, start_service, order_id)
    notifier = await start_service(NOTIFIER, roles=frozenset({"api"}))
    console_calls_in_process(notifier, aftersales)
    await add_people(notifier.runtime, ("zhou", "Zhou Min", {"customer_service": "operator"}))

    async def opened() -> dict[str, Any] | None:
        response = await aftersales.client.post(
            "/cases",
            json={"order_id": order_id, "case_type": "complaint", "reason": "cup arrived cracked"},
        )
        return response.json() if response.status_code == 201 else None

    case = await wait_until(opened, what="the order known to after-sales")
    case_id = case["case_id"]
    photo = b"\x89PNG\r\n\x1a\n" + b"0" * 64
    uploaded = await aftersales.client.post(
        f"/cases/{case_id}/attachments",
        params={"filename": "crack.png"},
        content=photo,
        headers={"Content-Type": "image/png"},
    )
    assert uploaded.status_code == 201, uploaded.text
    attachment = uploaded.json()["attachment_id"]

    async with console_browser(notifier) as zhou:
        csrf = await console_sign_in(zhou, "zhou")
        listing = await zhou.get("/console/cases")
        assert listing.status_code == 200 and case_id in listing.text
        page = await zhou.get(f"/console/cases/{case_id}")
        assert (
            'aria-current="step">intake' in page.text and 'id="case-collect_evidence"' in page.text
        )
        download = await zhou.get(f"/console/cases/{case_id}/attachments/{attachment}")
        assert download.status_code == 200 and download.content == photo
        assert download.headers["content-type"] == "image/png"

        # The stage's action, as the person; the same form posted twice moves it once.
        form = {"csrf_token": csrf, "form_token": csrf_in(page.text) + "-x", "note": "photos in"}
        for _ in range(2):
            moved = await zhou.post(f"/console/cases/{case_id}/collect_evidence", data=form)
            assert "error" not in moved.headers["location"], moved.headers["location"]
        # An action the stage does not allow: the problem+json shown in words.
        refused = await zhou.post(
            f"/console/cases/{case_id}/score", data={"csrf_token": csrf, "satisfaction": "5"}
        )
        shown = (await zhou.get(refused.headers["location"])).text
        assert 'id="error-message"' in shown and "cannot score now" in shown, shown
        for action, note in (("investigate", "checking"), ("resolve", "refund one mug")):
            moved = await zhou.post(
                f"/console/cases/{case_id}/{action}", data={"csrf_token": csrf, "note": note}
            )
            assert "error" not in moved.headers["location"], moved.headers["location"]
        refunded = await zhou.post(
            f"/console/cases/{case_id}/refund",
            data={
                "csrf_token": csrf,
                "sku": "MUG",
                "quantity": "1",
                "amount": "39.90",
                "refund_action": "return",
                "reason": "cracked",
            },
        )
        assert "error" not in refunded.headers["location"], refunded.headers["location"]
        page = (await zhou.get(f"/console/cases/{case_id}")).text
        assert 'id="case-state">resolution' in page and "39.90" in page

    detail = (await aftersales.client.get(f"/cases/{case_id}")).json()
    moves = [e for e in detail["timeline"] if e["to_state"] == "evidence"]
    # The person on the record, with the display name the console sent along.
    assert len(moves) == 1, moves
    assert moves[0]["actor"] == {"kind": "person", "id": "zhou", "name": "Zhou Min"}, moves
    assert detail["refunds"][0]["issued_by"].endswith("person:zhou"), detail["refunds"]


async def test_an_overdue_shipment_is_listed_and_given_to_another_carrier_by_name(
    settings: Settings, start_service: Any
) -> None:
    logistics = await start_service(LOGISTICS)
    await logistics.wait_assigned()
    order_id = f"o-{uuid.uuid4().hex[:8]}"
    # Paid five days ago, promised three days after payment: overdue by two days.
    for envelope in paid_order_events(order_id, paid_ago=timedelta(days=5)):
        await publish_event(settings, settings.topic_prefix + "orders.events", envelope)
    notifier = await start_service(NOTIFIER, roles=frozenset({"api"}))
    console_calls_in_process(notifier, logistics)
    await add_people(notifier.runtime, ("li", "Li Na", {"logistics": "operator"}))

    async with console_browser(notifier) as li:
        csrf = await console_sign_in(li, "li")

        async def listed() -> str | None:
            page = (await li.get("/console/shipments", params={"list": "overdue"})).text
            return page if order_id in page else None

        page = await wait_until(listed, what="the overdue shipment listed")
        shipment_id = page.split('data-shipment="', 1)[1].split('"', 1)[0]
        empty = await li.get("/console/shipments", params={"list": "exception"})
        assert "No shipments in this list." in empty.text
        moved = await li.post(
            f"/console/shipments/{shipment_id}/reassign",
            data={"csrf_token": csrf, "carrier": "zto", "reason": "sf lost track of it"},
        )
        assert moved.headers["location"].endswith("done=reassign"), moved.headers["location"]
        page = (await li.get(moved.headers["location"])).text
        assert 'id="shipment-carrier">zto' in page
        bad = await li.post(
            f"/console/shipments/{shipment_id}/reassign",
            data={"csrf_token": csrf, "carrier": "no such!", "reason": "x"},
        )
        assert "error=" in bad.headers["location"]

    history = (await logistics.client.get(f"/shipments/{shipment_id}")).json()["history"]
    assert any("person:li" in json.dumps(h) for h in history), history


async def test_only_admins_open_routing_silence_and_resend(
    settings: Settings, start_service: Any
) -> None:
    notifier = await start_service(NOTIFIER, roles=frozenset({"api"}))
    await add_people(notifier.runtime, ("wang", "Wang Wei", {"warehouse": "operator"}))
    async with notifier.runtime.pool.acquire() as conn:
        await people.add(conn, "root", "Root", CONSOLE_PASSWORD, is_admin=True)
        failed = uuid.uuid4()
        await conn.execute(
            "INSERT INTO deliveries (id, request_id, source_event_id, channel, recipient_kind,"
            " recipient_id, contact, contact_masked, template, language, params, subject,"
            " body_text, status, attempts, attempt_limit, last_error, dedup_key)"
            " VALUES ($1, 'r-1', 'e-1', 'sms', 'customer', 'c-1', '13800138000', '138****8000',"
            " 'order.delayed', 'zh-CN', '{}', 's', 'b', 'failed', 3, 3, 'gateway 503', 'd-1')",
            failed,
        )

    async with console_browser(notifier) as wang:
        csrf = await console_sign_in(wang, "wang")
        assert (await wang.get("/console/routing")).status_code == 403
        assert (await wang.get(f"/console/deliveries/{failed}")).status_code == 403
        refused = await wang.post(
            "/console/silences",
            data={"csrf_token": csrf, "matchers": 'rule="x"', "comment": "c", "hours": "1"},
        )
        assert refused.status_code == 403

    async with console_browser(notifier) as root:
        csrf = await console_sign_in(root, "root")
        page = await root.get("/console/routing")
        assert page.status_code == 200 and 'id="routing-tree"' in page.text
        assert "warehouse-stock" in page.text and str(failed) in page.text
        token = csrf_in(page.text)
        form = {
            "csrf_token": csrf,
            "form_token": f"{token}-silence",
            "matchers": 'rule="shipment.stalled"\ncarrier="sf-express"',
            "comment": "carrier outage",
            "hours": "2",
        }
        for _ in range(2):  # a resubmitted form creates one silence
            created = await root.post("/console/silences", data=form)
            assert "done=silence_created" in created.headers["location"]
        wrong = await root.post(
            "/console/silences",
            data={**form, "form_token": "other", "matchers": "not a matcher"},
        )
        assert "error=" in wrong.headers["location"]
        silences = (await notifier.client.get("/silences")).json()
        assert len(silences) == 1 and silences[0]["author"] == "person:root", silences
        expired = await root.post(
            f"/console/silences/{silences[0]['id']}/expire", data={"csrf_token": csrf}
        )
        assert "done=silence_expired" in expired.headers["location"]
        assert (await notifier.client.get("/silences")).json()[0]["state"] == "expired"

        resend = {"csrf_token": csrf, "form_token": f"{token}-{failed}"}
        for _ in range(2):  # one click, one re-send: the second post replays the first
            again = await root.post(f"/console/deliveries/{failed}/resend", data=resend)
            assert "done=resend" in again.headers["location"], again.headers["location"]
        delivery = (await notifier.client.get(f"/deliveries/{failed}")).json()
        assert (delivery["status"], delivery["deferred_reason"]) == ("pending", "resend")
        shown = (await root.get(f"/console/deliveries/{failed}")).text
        assert 'id="delivery-status">pending · resend' in shown and "No attempt yet." in shown
        assert (
            delivery["attempt_limit"]
            == 3 + settings.section(NotifierSettings).deliveries.max_attempts
        )
        # Not failed any more: a new click is refused in words.
        refused = await root.post(
            f"/console/deliveries/{failed}/resend", data={"csrf_token": csrf, "form_token": "n"}
        )
        shown = (await root.get(refused.headers["location"])).text
        assert 'id="error-message"' in shown and "resend" in shown


async def test_analytics_count_the_persons_teams_and_admins_see_all(
    settings: Settings, start_service: Any
) -> None:
    notifier = await start_service(NOTIFIER)
    await notifier.wait_assigned()
    await add_people(notifier.runtime, ("wang", "Wang Wei", {"warehouse": "operator"}))
    async with notifier.runtime.pool.acquire() as conn:
        await people.add(conn, "root", "Root", CONSOLE_PASSWORD, is_admin=True)
    await route_anomaly(settings, "fp-w", "stock.low", "warehouse")
    await route_anomaly(settings, "fp-l", "shipment.stalled", "logistics")
    for team in ("warehouse", "logistics"):
        await wait_until(lambda t=team: work_items_of(notifier.client, team=t), what=team)
    charts: dict[str, tuple[Any, Any]] = {}
    for login in ("wang", "root"):
        async with console_browser(notifier) as client:
            await console_sign_in(client, login)
            page = (await client.get("/console/analytics")).text
        per_team = page.split('id="per-team-data">', 1)[1].split("</script>", 1)[0]
        per_rule = page.split('id="per-rule-data">', 1)[1].split("</script>", 1)[0]
        charts[login] = (json.loads(per_team), json.loads(per_rule))
    assert charts["wang"] == (
        [{"label": "warehouse", "value": 1}],
        [{"label": "stock.low", "value": 1}],
    ), charts["wang"]
    teams, rules = charts["root"]
    assert {r["label"] for r in teams} == {"warehouse", "logistics"}, teams
    assert {r["label"] for r in rules} == {"stock.low", "shipment.stalled"}, rules


def chart_data(page: str, chart: str) -> list[dict[str, Any]]:
    """The numbers a chart on `page` is drawn from (also shown beside it)."""
    return json.loads(page.split(f'id="{chart}-data">', 1)[1].split("</script>", 1)[0])  # type: ignore[no-any-return]


async def test_analytics_per_hour_escalations_and_top_skus_and_customers_of_the_persons_teams(
    settings: Settings, start_service: Any
) -> None:
    # Claim-by passes at once: each item escalates to the top tier (3) within seconds.
    fast = tuned(
        settings,
        job_interval_s=0.1,
        notifier={"work_item_claim_within_s": {"P1": 0.3, "P2": 0.3, "P3": 0.3, "P4": 0.3}},
    )
    notifier = await start_service(NOTIFIER, settings_=fast)
    await notifier.wait_assigned()
    await add_people(notifier.runtime, ("wang", "Wang Wei", {"warehouse": "operator"}))
    async with notifier.runtime.pool.acquire() as conn:
        await people.add(conn, "root", "Root", CONSOLE_PASSWORD, is_admin=True)
    routed = [  # (fingerprint, rule, team, sku, customer)
        ("fp-a1", "stock.low", "warehouse", "S-1", "c-1"),
        ("fp-a2", "stock.low", "warehouse", "S-1", "c-2"),
        ("fp-a3", "stock.low", "warehouse", "S-2", "c-1"),
        ("fp-b1", "stock.low", "logistics", "S-1", "c-9"),
        ("fp-b2", "shipment.stalled", "logistics", "S-9", "c-9"),
    ]
    for fingerprint, rule, team, sku, customer in routed:
        labels = {"sku": sku, "customer_id": customer, "order_id": f"o-{fingerprint}"}
        await route_anomaly(settings, fingerprint, rule, team, labels=labels)

    async def all_at_top_tier() -> list[dict[str, Any]]:
        async with notifier.runtime.pool.acquire() as conn:
            anomalies = await conn.fetchval("SELECT count(*) FROM work_item_anomalies")
        found = await work_items_of(notifier.client)
        done = anomalies == len(routed) and all(i["tier"] == 3 for i in found)
        return found if done else []

    found = await wait_until(all_at_top_tier, timeout=30, what="every item escalated twice")
    pages: dict[str, str] = {}
    async with console_browser(notifier) as client:
        await console_sign_in(client, "wang")
        for bucket in ("day", "hour"):
            response = await client.get("/console/analytics", params={"bucket": bucket})
            assert response.status_code == 200, response.text
            pages[bucket] = response.text
        bad = await client.get("/console/analytics", params={"bucket": "fortnight"})
    async with console_browser(notifier) as client:
        await console_sign_in(client, "root")
        pages["root"] = (await client.get("/console/analytics")).text
    # The operator sees their team's SKUs and customers only: S-1 twice (not the logistics
    # team's third), never S-9 or c-9; the numbers beside the chart say the same.
    expected_skus = [
        {"label": "stock.low · S-1", "value": 2},
        {"label": "stock.low · S-2", "value": 1},
    ]
    expected_customers = [
        {"label": "stock.low · c-1", "value": 2},
        {"label": "stock.low · c-2", "value": 1},
    ]
    items_by_team: dict[str, int] = {}
    for item in found:
        items_by_team[item["team"]] = items_by_team.get(item["team"], 0) + 1
    for bucket in ("day", "hour"):
        page = pages[bucket]
        assert chart_data(page, "top-skus") == expected_skus, bucket
        assert chart_data(page, "top-customers") == expected_customers, bucket
        assert "S-9" not in page and "c-9" not in page, bucket
        table = page.split('id="top-skus-table"', 1)[1].split("</table>", 1)[0]
        assert '<td>S-1</td><td class="num">2</td>' in table, table
        # Two escalations (tiers 2 and 3) per warehouse item, none of logistics'.
        assert chart_data(page, "escalations") == [
            {"label": "warehouse", "value": 2 * items_by_team["warehouse"]}
        ], bucket
        assert 'id="bucket-' + bucket + '" aria-current="page"' in page, bucket
    # Per hour: the anomalies fall in the current hour, labelled by the hour.
    per_hour = chart_data(pages["hour"], "per-bucket")
    assert sum(p["value"] for p in per_hour) == 3 and per_hour[-1]["label"].endswith(":00")
    # A bucket we do not offer: a clear error, and the default (per day) view.
    assert bad.status_code == 400
    assert 'id="analytics-error"' in bad.text and "bucket must be one of hour, day" in bad.text
    assert 'id="bucket-day" aria-current="page"' in bad.text
    # An admin sees every team's.
    assert chart_data(pages["root"], "top-skus") == [
        {"label": "shipment.stalled · S-9", "value": 1},
        {"label": "stock.low · S-1", "value": 3},
        {"label": "stock.low · S-2", "value": 1},
    ]
    assert {e["label"]: e["value"] for e in chart_data(pages["root"], "escalations")} == {
        team: 2 * n for team, n in items_by_team.items()
    }
