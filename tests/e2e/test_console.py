"""The console on the real broker and database, through HTTP like a browser: people sign in,
see their teams' queue only, act on items under their own name (timeline and events), are
refused other teams' items by the server (403), need the CSRF token for every change, and
sign out. A key with scope `delegate` acts for a named person on the services' APIs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from orderflow import order_body
from pydantic import SecretStr
from testkit import (
    CONSOLE_PASSWORD,
    RunningService,
    add_people,
    console_browser,
    console_calls_in_process,
    console_sign_in,
    csrf_in,
    read_topic,
    route_anomaly,
    wait_until,
    work_items_of,
)

from orderguard.services.notifier.bootstrap import DEFINITION as NOTIFIER
from orderguard.services.notifier.console import people, sessions
from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared.envelope import Envelope
from orderguard.shared.http.auth import acting_person_headers
from orderguard.shared.settings import Settings


async def item_events(settings: Settings, at_least: int) -> list[Envelope]:
    found = [
        r.envelope for r in await read_topic(settings, settings.topic_prefix + "work_items.events")
    ]
    return found if len(found) >= at_least else []


async def two_teams(settings: Settings, start_service: Any) -> tuple[RunningService, str, str]:
    """The notifier with a warehouse item and a logistics item, and one operator of each team."""
    keys = {SecretStr("test-key"): ["*"], SecretStr("reader"): ["work_items:read"]}
    notifier = await start_service(
        NOTIFIER, settings_=settings.model_copy(update={"api_keys": keys})
    )
    await notifier.wait_assigned()
    await add_people(
        notifier.runtime,
        ("wang", "Wang Wei", {"warehouse": "operator"}),
        ("li", "Li Na", {"logistics": "lead"}),
    )
    await route_anomaly(settings, "fp-w", "stock.low", "warehouse")
    await route_anomaly(settings, "fp-l", "shipment.stalled", "logistics")
    [warehouse] = await wait_until(
        lambda: work_items_of(notifier.client, team="warehouse"), what="the warehouse item"
    )
    [logistics] = await wait_until(
        lambda: work_items_of(notifier.client, team="logistics"), what="the logistics item"
    )
    return notifier, warehouse["id"], logistics["id"]


async def test_an_operator_works_their_teams_queue_under_their_own_name(
    settings: Settings, start_service: Any
) -> None:
    notifier, warehouse_item, logistics_item = await two_teams(settings, start_service)
    async with console_browser(notifier) as wang:
        assert (await wang.get("/console/")).headers["location"] == "/console/sign-in"
        csrf = await console_sign_in(wang, "wang")
        assert any(c.name == "__Host-og_session" for c in wang.cookies.jar)
        queue = (await wang.get("/console/")).text
        assert warehouse_item in queue and logistics_item not in queue
        assert (await wang.get("/console/", params={"team": "logistics"})).status_code == 403
        assert (await wang.get(f"/console/work-items/{logistics_item}")).status_code == 403

        # Without the CSRF token nothing changes.
        forged = await wang.post(f"/console/work-items/{warehouse_item}/claim")
        assert forged.status_code == 403
        claimed = await wang.post(
            f"/console/work-items/{warehouse_item}/claim", data={"csrf_token": csrf}
        )
        assert claimed.status_code == 303, claimed.text
        resolved = await wang.post(
            f"/console/work-items/{warehouse_item}/resolve",
            data={"csrf_token": csrf, "reason": "restocked"},
        )
        assert resolved.status_code == 303 and "error" not in resolved.headers["location"]
        # Resolving it again is refused with its state named, not a server error.
        again = await wang.post(
            f"/console/work-items/{warehouse_item}/resolve",
            data={"csrf_token": csrf, "reason": "restocked"},
        )
        assert again.status_code == 303
        assert "Cannot resolve a resolved work item." in unquote(again.headers["location"])
        page = (await wang.get(f"/console/work-items/{warehouse_item}")).text
        assert 'href="/console/orders/o-1"' in page  # the linked order's page
        timeline = page[page.index('id="timeline"') :]
        assert "claimed</td><td>Wang Wei" in timeline and "resolved</td><td>Wang Wei" in timeline

        # The events others follow name the person, not a key.
        events = await wait_until(lambda: item_events(settings, 3), what="work item events")
        actors = [e.data.get("actor") for e in events if e.subject == warehouse_item]
        assert "person:wang" in actors, actors
        names = {e.data.get("actor_name") for e in events if e.data.get("actor") == "person:wang"}
        assert names == {"Wang Wei"}, names

        # Signing out ends the session on the server: the old cookie opens nothing.
        cookie = wang.cookies.get("__Host-og_session")
        assert (await wang.post("/console/sign-out", data={"csrf_token": csrf})).status_code == 303
        wang.cookies.set("__Host-og_session", cookie or "", domain="console.test")
        assert (await wang.get("/console/")).status_code == 303

    async with console_browser(notifier) as li:
        await console_sign_in(li, "li")
        assert (await li.get(f"/console/work-items/{warehouse_item}")).status_code == 403
        csrf = await console_sign_in(li, "li")
        refused = await li.post(
            f"/console/work-items/{warehouse_item}/dismiss",
            data={"csrf_token": csrf, "reason": "not mine"},
        )
        assert refused.status_code == 403
        [item] = await work_items_of(notifier.client, team="warehouse", state="resolved")
        assert item["closed_by"] == "person:wang"

    # The timeline stored the name with each of wang's entries: it names him through the API
    # too, and keeps the name he had then after it changes.
    async with notifier.runtime.pool.acquire() as conn:
        await conn.execute("UPDATE console_people SET display_name = 'W. Wei' WHERE login = 'wang'")
    detail = (await notifier.client.get(f"/work-items/{warehouse_item}")).json()
    named = {
        e["what"]: e["actor"]["name"] for e in detail["timeline"] if e["actor"]["id"] == "wang"
    }
    assert named == {"claimed": "Wang Wei", "resolved": "Wang Wei"}, detail["timeline"]


async def test_wrong_passwords_disabled_people_and_expired_sessions_get_nothing(
    settings: Settings, start_service: Any
) -> None:
    notifier, _, _ = await two_teams(settings, start_service)
    async with console_browser(notifier) as client:
        form = await client.get("/console/sign-in")
        wrong = await client.post(
            "/console/sign-in",
            data={"csrf_token": csrf_in(form.text), "login": "wang", "password": "nope"},
        )
        assert wrong.status_code == 401 and "Wrong login or password" in wrong.text
        await console_sign_in(client, "wang")
        async with notifier.runtime.pool.acquire() as conn:
            await people.disable(conn, "wang")
        assert (await client.get("/console/")).status_code == 303

    async with notifier.runtime.pool.acquire() as conn:
        person = await people.authenticate(conn, "li", CONSOLE_PASSWORD)
        assert person is not None
        now = datetime.now(UTC)
        token, _ = await sessions.start(conn, person.id, now, timedelta(hours=12))
        idle = timedelta(minutes=30)
        assert await sessions.resume(conn, token, now + timedelta(minutes=29), idle)
        assert await sessions.resume(conn, token, now + timedelta(minutes=60), idle) is None
        token, _ = await sessions.start(conn, person.id, now, timedelta(hours=1))
        assert await sessions.resume(conn, token, now + timedelta(minutes=61), idle) is None


async def test_a_first_admin_must_choose_a_password_then_manages_people(
    settings: Settings, start_service: Any
) -> None:
    notifier = await start_service(NOTIFIER)
    async with notifier.runtime.pool.acquire() as conn:
        one_time = await people.ensure_first_admin(conn)
        assert one_time and await people.ensure_first_admin(conn) is None
    async with console_browser(notifier) as admin:
        form = await admin.get("/console/sign-in")
        signed = await admin.post(
            "/console/sign-in",
            data={"csrf_token": csrf_in(form.text), "login": "admin", "password": one_time},
        )
        assert signed.headers["location"] == "/console/password"
        assert (await admin.get("/console/")).headers["location"] == "/console/password"
        csrf = csrf_in((await admin.get("/console/password")).text)
        changed = await admin.post(
            "/console/password",
            data={"csrf_token": csrf, "password": one_time, "new_password": CONSOLE_PASSWORD},
        )
        assert changed.status_code == 303
        added = await admin.post(
            "/console/people",
            data={
                "csrf_token": csrf,
                "login": "zhao",
                "display_name": "Zhao Lei",
                "password": CONSOLE_PASSWORD,
                "teams": "finance:lead, risk",
            },
        )
        assert added.headers["location"] == "/console/people"
    async with notifier.runtime.pool.acquire() as conn:
        zhao = next(p for p in await people.all_people(conn) if p.login == "zhao")
    assert zhao.teams == {"finance": "lead", "risk": "operator"} and not zhao.is_admin


@pytest.mark.parametrize("language", ["en", "zh-CN"])
async def test_the_browser_language_is_the_default_and_a_choice_sticks(
    settings: Settings, start_service: Any, language: str
) -> None:
    notifier = await start_service(NOTIFIER, roles=frozenset({"api"}))
    async with console_browser(notifier) as client:
        page = await client.get("/console/sign-in", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
        assert "登录" in page.text and '<html lang="zh-CN">' in page.text
        chosen = await client.get(f"/console/language/{language}")
        assert chosen.status_code == 303
        page = await client.get("/console/sign-in", headers={"Accept-Language": "zh-CN"})
        assert f'<html lang="{language}">' in page.text


async def test_a_delegating_key_acts_for_a_person_and_other_keys_may_not(
    settings: Settings, start_service: Any
) -> None:
    notifier, warehouse_item, _ = await two_teams(settings, start_service)
    as_wang = {"X-Acting-Person": "wang"}
    refused = await notifier.client.get("/work-items", headers={"X-API-Key": "reader", **as_wang})
    assert refused.status_code == 403 and "delegate" in refused.json()["detail"]
    bad = await notifier.client.post(
        f"/work-items/{warehouse_item}/claim", headers={"X-Acting-Person": "wang\nroot"}
    )
    assert bad.status_code == 422
    unreadable = await notifier.client.post(
        f"/work-items/{warehouse_item}/claim",
        headers={**as_wang, "X-Acting-Person-Name": "%FF%FE"},
    )
    assert unreadable.status_code == 422 and "X-Acting-Person-Name" in unreadable.text
    # The display name goes along (UTF-8, percent-encoded) and is stored with the entry.
    claimed = await notifier.client.post(
        f"/work-items/{warehouse_item}/claim",
        headers=acting_person_headers("wang", "王伟 (Wang Wei)"),
    )
    assert claimed.status_code == 200 and claimed.json()["claimed_by"] == "person:wang"
    assert claimed.json()["timeline"][-1]["actor"] == {
        "kind": "person",
        "id": "wang",
        "name": "王伟 (Wang Wei)",
    }
    # A key without `delegate` may not name a person, whatever name it gives.
    named = await notifier.client.post(
        f"/work-items/{warehouse_item}/comments",
        json={"body": "x"},
        headers={"X-API-Key": "reader", **acting_person_headers("wang", "Wang")},
    )
    assert named.status_code == 403


async def test_a_lead_reassigns_within_their_team_and_operators_may_not(
    settings: Settings, start_service: Any
) -> None:
    notifier, warehouse_item, logistics_item = await two_teams(settings, start_service)
    async with notifier.runtime.pool.acquire() as conn:
        await people.add(conn, "zhang", "Zhang Min", CONSOLE_PASSWORD, teams={"warehouse": "lead"})
        await people.add(
            conn, "chen", "Chen Jie", CONSOLE_PASSWORD, teams={"warehouse": "operator"}
        )

    # Over HTTP with a delegating key: the operator is refused (403), the lead is not.
    def as_(login: str) -> dict[str, str]:
        return {"X-Acting-Person": login}

    path = f"/work-items/{warehouse_item}/reassign"
    refused = await notifier.client.post(path, json={"assignee": "chen"}, headers=as_("wang"))
    assert refused.status_code == 403 and refused.json()["type"].endswith("not-a-lead")
    outsider = await notifier.client.post(path, json={"assignee": "li"}, headers=as_("zhang"))
    assert outsider.status_code == 422 and outsider.json()["assignee"] == "li"
    # li leads logistics, not warehouse: no reassigning warehouse work either.
    foreign = await notifier.client.post(path, json={"assignee": "chen"}, headers=as_("li"))
    assert foreign.status_code == 403
    given = await notifier.client.post(path, json={"assignee": "wang"}, headers=as_("zhang"))
    assert given.status_code == 200, given.text
    assert (given.json()["state"], given.json()["claimed_by"]) == ("claimed", "person:wang")
    entry = given.json()["timeline"][-1]
    assert (entry["what"], entry["actor"]["id"], entry["details"]) == (
        "reassigned",
        "zhang",
        {"from": None, "to": "person:wang"},
    )

    # In the console: the lead sees the control and moves it on to chen; an operator gets 403.
    async with console_browser(notifier) as zhang, console_browser(notifier) as wang:
        lead_csrf = await console_sign_in(zhang, "zhang")
        page = (await zhang.get(f"/console/work-items/{warehouse_item}")).text
        assert 'id="reassign-to"' in page and "Chen Jie (chen)" in page
        moved = await zhang.post(
            f"/console/work-items/{warehouse_item}/reassign",
            data={"csrf_token": lead_csrf, "assignee": "chen"},
        )
        assert moved.status_code == 303 and "error" not in moved.headers["location"]
        operator_csrf = await console_sign_in(wang, "wang")
        assert (
            'id="reassign-to"' not in (await wang.get(f"/console/work-items/{warehouse_item}")).text
        )
        denied = await wang.post(
            f"/console/work-items/{warehouse_item}/reassign",
            data={"csrf_token": operator_csrf, "assignee": "wang"},
        )
        assert denied.status_code == 403
        assert (await zhang.get(f"/console/work-items/{logistics_item}")).status_code == 403

    item = (await notifier.client.get(f"/work-items/{warehouse_item}")).json()
    assert item["claimed_by"] == "person:chen"
    events = await wait_until(lambda: item_events(settings, 4), what="the items' events")
    reassigned = [e.data for e in events if e.type == "work_item.reassigned.v1"]
    assert [(e["actor"], e["previous_assignee"], e["assignee"]) for e in reassigned] == [
        ("person:zhang", None, "person:wang"),
        ("person:zhang", "person:wang", "person:chen"),
    ]


async def test_orders_restored_from_the_bin_name_the_person_and_charts_get_their_numbers(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER)
    notifier = await start_service(NOTIFIER, roles=frozenset({"api"}))
    console_calls_in_process(notifier, order)
    placed = []
    for sku in ("S-1", "S-1", "S-2"):
        response = await order.client.post("/orders", json=order_body(sku=sku))
        assert response.status_code == 201, response.text
        placed.append(response.json()["order_id"])
    for order_id, reason in zip(
        placed, ("address wrong", "address wrong", "duplicate"), strict=True
    ):
        moved = await order.client.post(
            f"/orders/{order_id}/recycle-bin", json={"category": "held", "reason": reason}
        )
        assert moved.status_code == 201, moved.text
    await add_people(notifier.runtime, ("zhou", "Zhou Min", {"customer_service": "operator"}))

    async with console_browser(notifier) as zhou:
        csrf = await console_sign_in(zhou, "zhou")
        page = (await zhou.get("/console/recycle-bin")).text
        assert all(order_id in page for order_id in placed)
        assert '"label": "address wrong", "value": 2' in page  # the reasons chart's data
        one = await zhou.post(
            "/console/recycle-bin/restore", data={"csrf_token": csrf, "order_id": placed[0]}
        )
        assert "restored=1" in one.headers["location"] and "error" not in one.headers["location"]
        both = await zhou.post(
            "/console/recycle-bin/restore",
            content=f"csrf_token={csrf}&order_id={placed[0]}&order_id={placed[1]}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        # The first was restored already: its refusal is shown in words; the second is restored.
        shown = await zhou.get(both.headers["location"])
        assert "restored=1" in both.headers["location"]
        assert "not in the recycle bin" in shown.text.lower(), shown.text
        analytics = await zhou.get("/console/analytics")
        assert analytics.status_code == 200 and 'id="bin-pareto"' in analytics.text

        # Orders: search by id, hold with a reason, an illegal action's problem shown in words.
        found = await zhou.get("/console/orders", params={"order_id": placed[2]})
        assert found.headers["location"] == f"/console/orders/{placed[2]}"
        page = await zhou.get(found.headers["location"])
        assert 'id="order-hold"' in page.text and "139****5678" in page.text
        held = await zhou.post(
            f"/console/orders/{placed[2]}/hold", data={"csrf_token": csrf, "reason": "call back"}
        )
        assert "error" not in held.headers["location"], held.headers["location"]
        again = await zhou.post(
            f"/console/orders/{placed[2]}/hold", data={"csrf_token": csrf, "reason": "twice"}
        )
        assert "error=" in again.headers["location"]
        shown = (await zhou.get(again.headers["location"])).text
        assert 'id="error-message"' in shown and 'id="order-status">on_hold' in shown
        listing = await zhou.get("/console/orders", params={"status": "on_hold"})
        assert placed[2] in listing.text and placed[1] not in listing.text
        # An order the order service does not know: the error page, with its status.
        unknown = await zhou.get("/console/orders/ord_unknown")
        assert unknown.status_code == 404 and "(404)" in unknown.text, unknown.text

    detail = (await order.client.get(f"/orders/{placed[0]}")).json()
    actors = [entry["actor"] for entry in detail["timeline"]]
    # The order service stored the name the console sent: it reads well outside the console.
    assert {"kind": "person", "id": "zhou", "name": "Zhou Min"} in actors, actors
    held = (await order.client.get(f"/orders/{placed[2]}")).json()["timeline"][-1]
    assert held["actor"] == {"kind": "person", "id": "zhou", "name": "Zhou Min"}, held
