"""Work items on the real broker and database: routed groups become work items people see and
work over HTTP; redelivery changes nothing; escalation and reminders fire when due (with a
notification request and a timeline entry); clearances close items; analytics count a known
data set; a restart loses nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prometheus_client import REGISTRY
from pydantic import SecretStr
from testkit import RunningService, events_of_type, publish_event, read_topic, tuned, wait_until

from orderguard.services.notifier.bootstrap import DEFINITION as NOTIFIER
from orderguard.shared.envelope import Envelope, new_event_id
from orderguard.shared.events.anomalies import AnomalyDetected, AnomalyRouted
from orderguard.shared.scheduler import run_job
from orderguard.shared.settings import Settings
from orderguard.shared.topics import TEAMS

BOB_KEY = "bob-key"


def anomaly(
    fingerprint: str,
    *,
    rule: str = "stock.low",
    severity: str = "P3",
    team: str = "warehouse",
    labels: dict[str, str] | None = None,
    status: str = "firing",
    at: datetime | None = None,
) -> AnomalyDetected:
    at = at or datetime.now(UTC)
    return AnomalyDetected(
        rule=rule,
        fingerprint=fingerprint,
        status=status,  # type: ignore[arg-type]
        severity=severity,  # type: ignore[arg-type]
        team=team,  # type: ignore[arg-type]
        labels=labels or {"sku": "SKU-1", "warehouse": "main", "order_id": "o-1"},
        summary=f"{rule} on {fingerprint}",
        event_time=at,
        detected_at=at,
        source_event_id="e-1",
    )


def routed(
    data: AnomalyDetected, group_key: str | None = None, severity: str | None = None
) -> Envelope:
    event = AnomalyRouted(
        anomaly=data,
        route=f"{data.team}-route",
        queue=data.team,
        channels=["in_app"],
        routed_at=datetime.now(UTC),
        group_key=group_key,
        severity=severity,  # type: ignore[arg-type]
    )
    return Envelope(
        type="anomaly.routed.v1",
        source="/orderguard/notifier/router",
        subject=data.fingerprint,
        data=event.model_dump(mode="json"),
    )


def detected(data: AnomalyDetected) -> Envelope:
    return Envelope(
        type="anomaly.detected.v1",
        source="/test/detector",
        subject=data.fingerprint,
        data=data.model_dump(mode="json"),
    )


async def publish_routed(settings: Settings, envelope: Envelope) -> None:
    await publish_event(
        settings, settings.topic_prefix + f"queues.{envelope.data['queue']}", envelope
    )


async def item_events(settings: Settings, at_least: int) -> list[Envelope]:
    """work_item.*.v1 events on work_items.events, in order (one partition per item)."""
    found = [
        r.envelope for r in await read_topic(settings, settings.topic_prefix + "work_items.events")
    ]
    return found if len(found) >= at_least else []


async def items(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/work-items", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def consumed(service: RunningService, handler: str, records: int) -> None:
    """Wait until the notifier's worker consumed `records` on what `handler` reads: the queues
    (work items) or the anomalies (their clearances)."""
    topics = service.runtime.topics
    read = (
        [topics.anomalies]
        if handler == "notifier.work-items.clearances"
        else [topics.queue(team) for team in TEAMS]
    )

    async def done() -> bool:
        return await service.consumed_on(*read) >= records

    await wait_until(done, what=f"{handler} to consume {records} records")


def with_keys(settings: Settings, **update: Any) -> Settings:
    return settings.model_copy(
        update={
            "api_keys": {
                SecretStr("test-key"): ["*"],
                SecretStr(BOB_KEY): ["work_items:read", "work_items:write"],
            }
        }
        | update
    )


async def test_a_routed_group_is_one_work_item_people_claim_comment_and_resolve(
    settings: Settings, start_service: Any
) -> None:
    notifier = await start_service(NOTIFIER, settings_=with_keys(settings))
    await notifier.wait_assigned()
    client = notifier.client
    first = routed(anomaly("fp-a", labels={"sku": "S-1", "order_id": "o-9"}), group_key="main")
    await publish_routed(settings, first)
    [item] = await wait_until(lambda: items(client, team="warehouse"), what="the work item")
    assert (item["state"], item["severity"], item["priority"], item["tier"]) == ("open", "P3", 3, 1)
    assert item["allowed_actions"] == ["claim", "dismiss", "reassign", "resolve"]
    assert item["group_key"] == "main" and item["anomaly_count"] == 1

    # Redelivered (same event id), resent under a new id, and a second anomaly of the group.
    await publish_routed(settings, first)
    again = first.model_copy(update={"id": new_event_id()})
    await publish_routed(settings, again)
    await publish_routed(
        settings, routed(anomaly("fp-b", rule="stock.out", severity="P2"), group_key="main")
    )
    await consumed(notifier, "notifier.work-items", 4)
    [item] = await items(client, team="warehouse")
    assert (item["anomaly_count"], item["severity"], item["rules"]) == (
        2,
        "P2",
        ["stock.low", "stock.out"],
    )

    claimed = await client.post(f"/work-items/{item['id']}/claim")
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["state"] == "claimed" and claimed.json()["claimed_by"].startswith(
        "work_items:write#"
    )
    taken = await client.post(f"/work-items/{item['id']}/claim", headers={"X-API-Key": BOB_KEY})
    assert taken.status_code == 409 and taken.json()["claimed_by"] == claimed.json()["claimed_by"]
    comment = await client.post(
        f"/work-items/{item['id']}/comments",
        json={"body": "restock ordered"},
        headers={"Idempotency-Key": "c-1"},
    )
    assert comment.status_code == 201, comment.text
    replay = await client.post(
        f"/work-items/{item['id']}/comments",
        json={"body": "restock ordered"},
        headers={"Idempotency-Key": "c-1"},
    )
    assert replay.json() == comment.json()
    no_reason = await client.post(f"/work-items/{item['id']}/dismiss", json={})
    assert no_reason.status_code == 422
    resolved = await client.post(f"/work-items/{item['id']}/resolve", json={"reason": "restocked"})
    assert resolved.status_code == 200 and resolved.json()["state"] == "resolved"
    twice = await client.post(f"/work-items/{item['id']}/resolve", json={"reason": "again"})
    assert twice.status_code == 409 and twice.json()["current_state"] == "resolved"
    assert "resolved" in twice.json()["detail"]

    detail = (await client.get(f"/work-items/{item['id']}")).json()
    assert [a["fingerprint"] for a in detail["anomalies"]] == ["fp-a", "fp-b"]
    assert {(link["kind"], link["ref"]) for link in detail["links"]} == {
        ("order", "o-9"),
        ("product", "S-1"),
        ("order", "o-1"),
        ("product", "SKU-1"),
    }
    assert [c["body"] for c in detail["comments"]] == ["restock ordered"]
    assert [e["what"] for e in detail["timeline"]] == [
        "opened",
        "anomaly attached",
        "severity raised",
        "claimed",
        "commented",
        "resolved",
    ]
    assert await items(client, team="warehouse", state="open") == []
    missing = await client.get("/work-items/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404

    # Other systems follow the item on work_items.events, keyed by its id, once per change.
    changes = await wait_until(
        lambda: item_events(settings, 4), what="the work item's changes published"
    )
    assert [(e.type, e.subject, e.data["state"]) for e in changes] == [
        ("work_item.opened.v1", item["id"], "open"),
        ("work_item.claimed.v1", item["id"], "claimed"),
        ("work_item.commented.v1", item["id"], "claimed"),
        ("work_item.resolved.v1", item["id"], "resolved"),
    ]
    assert changes[1].data["actor"] == claimed.json()["claimed_by"]
    assert changes[2].data["comment_id"] == comment.json()["id"]
    assert changes[3].data["auto"] is False and changes[3].data["due_at"] is None


async def test_queue_views_filter_and_sort_by_priority_then_due_time(
    settings: Settings, start_service: Any
) -> None:
    notifier = await start_service(NOTIFIER)
    await notifier.wait_assigned()
    for fingerprint, severity, team in [
        ("q-1", "P4", "logistics"),
        ("q-2", "P1", "logistics"),
        ("q-3", "P3", "logistics"),
        ("q-4", "P1", "finance"),
    ]:
        await publish_routed(
            settings,
            routed(anomaly(fingerprint, severity=severity, team=team, rule=f"r.{severity}")),
        )
    found = await wait_until(
        lambda: items(notifier.client, team="logistics"),
        what="three logistics items",
    )
    await consumed(notifier, "notifier.work-items", 4)
    found = await items(notifier.client, team="logistics")
    assert [i["severity"] for i in found] == ["P1", "P3", "P4"]
    p1 = await items(notifier.client, severity="P1")
    assert sorted(i["group_key"] for i in p1) == ["q-2", "q-4"]
    assert p1[0]["due_at"] <= p1[1]["due_at"]  # same priority: the sooner due first
    assert [i["group_key"] for i in await items(notifier.client, rule="r.P3")] == ["q-3"]
    assert await items(notifier.client, min_age=3600) == []
    assert len(await items(notifier.client, max_age=3600)) == 4
    page = (await notifier.client.get("/work-items", params={"limit": 3})).json()
    assert (page["total"], len(page["items"]), page["next_offset"]) == (4, 3, 3)


async def test_an_unclaimed_item_escalates_when_due_once_per_due_time(
    settings: Settings, start_service: Any
) -> None:
    fast = tuned(
        settings,
        job_interval_s=0.1,
        notifier={
            "work_item_claim_within_s": {"P1": 0.6, "P2": 0.6, "P3": 0.6, "P4": 0.6},
            "work_item_reminder_every_s": 0.3,
        },
    )
    notifier = await start_service(NOTIFIER, settings_=fast)
    await notifier.wait_assigned()
    # A second worker's escalation loop on the same database: they must not escalate twice.
    stop = asyncio.Event()
    [escalate] = [
        job
        for job in NOTIFIER.workers(notifier.runtime).jobs
        if job.name == "notifier.work-items.escalate"
    ]
    twin = asyncio.create_task(run_job(escalate, notifier.runtime.pool, "notifier", stop, 0.05))
    try:
        await publish_routed(settings, routed(anomaly("fp-late", severity="P3")))

        async def at_top_tier() -> list[dict[str, Any]]:
            return [i for i in await items(notifier.client) if i["tier"] == 3]

        [item] = await wait_until(at_top_tier, what="the item escalated twice")
    finally:
        stop.set()
        await twin
    assert item["severity"] == "P1" and item["state"] == "open"
    requests = settings.topic_prefix + "notifications.requests"

    async def requested() -> list[Envelope]:
        found = await events_of_type(settings, requests, "notification.requested.v1")
        reminders = [e for e in found if e.data["template"] == "work_item.reminder"]
        return found if reminders else []

    found = await wait_until(requested, what="escalations and a reminder requested")
    escalations = [e for e in found if e.data["template"] == "work_item.escalated"]
    assert [(e.data["request_id"], e.subject) for e in escalations] == [
        (f"work_item.escalated:{item['id']}:2", "warehouse"),
        (f"work_item.escalated:{item['id']}:3", "warehouse"),
    ]
    assert escalations[0].data["recipient"] == {
        "kind": "team",
        "id": "warehouse",
        "email": None,
        "phone": None,
        "language": None,
    }
    assert escalations[0].data["params"]["missed"] == "claim"
    assert escalations[1].data["params"]["severity"] == "P1"
    detail = (await notifier.client.get(f"/work-items/{item['id']}")).json()
    escalated = [e for e in detail["timeline"] if e["what"] == "escalated"]
    assert [(e["details"]["tier"], e["details"]["severity"]) for e in escalated] == [
        (2, "P2"),
        (3, "P1"),
    ]
    assert any(e["what"] == "reminder sent" for e in detail["timeline"])
    escalated_events = [
        e for e in await item_events(settings, 0) if e.type == "work_item.escalated.v1"
    ]
    assert [(e.data["tier"], e.data["severity"], e.data["missed"]) for e in escalated_events] == [
        (2, "P2", "claim"),
        (3, "P1", "claim"),
    ]
    # Claimed: reminders stop.
    assert (await notifier.client.post(f"/work-items/{item['id']}/claim")).status_code == 200
    async with notifier.runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT next_reminder_at FROM work_items") is None


async def test_an_anomaly_that_clears_updates_its_work_item(
    settings: Settings, start_service: Any
) -> None:
    notifier = await start_service(NOTIFIER)
    await notifier.wait_assigned()
    anomalies = settings.topic_prefix + "anomalies.detected"
    firing = anomaly("fp-clear")
    await publish_routed(settings, routed(firing))
    [item] = await wait_until(lambda: items(notifier.client), what="the work item")
    await publish_event(
        settings,
        anomalies,
        detected(
            firing.model_copy(
                update={
                    "status": "resolved",
                    "event_time": firing.event_time + timedelta(seconds=5),
                }
            )
        ),
    )

    async def auto_resolved() -> dict[str, Any] | None:
        detail = (await notifier.client.get(f"/work-items/{item['id']}")).json()
        return detail if detail["state"] == "resolved" else None

    detail = await wait_until(auto_resolved, what="the item resolved by its clearance")
    assert detail["closed_by"] == "system" and detail["close_reason"] == "all anomalies cleared"
    assert detail["anomalies"][0]["cleared_at"] is not None
    assert [e["what"] for e in detail["timeline"]][-2:] == ["anomaly cleared", "resolved"]

    # A clearance that overtakes its routed firing: the firing lands cleared.
    early = anomaly("fp-overtaken", team="logistics")
    await publish_event(
        settings,
        anomalies,
        detected(
            early.model_copy(
                update={"status": "resolved", "event_time": early.event_time + timedelta(seconds=1)}
            )
        ),
    )
    await consumed(notifier, "notifier.work-items.clearances", 2)
    await publish_routed(settings, routed(early))
    [late] = await wait_until(
        lambda: items(notifier.client, team="logistics"), what="the overtaken item"
    )
    assert late["state"] == "resolved" and late["cleared_at"] is not None

    # A claimed item is only marked cleared: its claimant confirms.
    claimed = anomaly("fp-claimed", team="risk", rule="refund.repeated")
    await publish_routed(settings, routed(claimed))
    [risk] = await wait_until(lambda: items(notifier.client, team="risk"), what="the risk item")
    assert (await notifier.client.post(f"/work-items/{risk['id']}/claim")).status_code == 200
    await publish_event(
        settings,
        anomalies,
        detected(
            claimed.model_copy(
                update={
                    "status": "resolved",
                    "event_time": claimed.event_time + timedelta(seconds=1),
                }
            )
        ),
    )

    async def cleared() -> list[dict[str, Any]]:
        return [i for i in await items(notifier.client, team="risk") if i["cleared_at"]]

    [risk] = await wait_until(cleared, what="the claimed item marked cleared")
    assert risk["state"] == "claimed"


async def test_analytics_count_a_known_data_set(settings: Settings, start_service: Any) -> None:
    notifier = await start_service(NOTIFIER)
    await notifier.wait_assigned()
    t0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    data = [
        ("a-1", "stock.low", "warehouse", {"sku": "MUG", "warehouse": "main"}, t0),
        (
            "a-2",
            "stock.low",
            "warehouse",
            {"sku": "MUG", "warehouse": "east"},
            t0 + timedelta(minutes=10),
        ),
        (
            "a-3",
            "stock.low",
            "warehouse",
            {"sku": "CUP", "warehouse": "main"},
            t0 + timedelta(hours=1),
        ),
        (
            "a-4",
            "tracking.stalled",
            "logistics",
            {"carrier": "sf", "shipment_id": "sh-1"},
            t0 + timedelta(hours=2, minutes=5),
        ),
    ]
    for fingerprint, rule, team, labels, at in data:
        await publish_routed(
            settings, routed(anomaly(fingerprint, rule=rule, team=team, labels=labels, at=at))
        )
    await consumed(notifier, "notifier.work-items", 4)
    window = {"from": t0.isoformat(), "to": (t0 + timedelta(hours=3)).isoformat(), "bucket": "hour"}

    by_sku = (
        await notifier.client.get("/analytics/anomalies", params={**window, "by": "sku"})
    ).json()
    assert [datetime.fromisoformat(b) for b in by_sku["buckets"]] == [
        t0 + timedelta(hours=h) for h in range(3)
    ]
    assert {s["key"]: s["counts"] for s in by_sku["series"]} == {
        "MUG": [2, 0, 0],
        "CUP": [0, 1, 0],
        "(none)": [0, 0, 1],
    }
    assert by_sku["total"] == 4
    assert by_sku["series"][0]["rates_per_hour"] == [2.0, 0.0, 0.0]
    by_rule = (
        await notifier.client.get(
            "/analytics/anomalies", params={**window, "by": "rule", "bucket": "day"}
        )
    ).json()
    assert {s["key"]: s["total"] for s in by_rule["series"]} == {
        "stock.low": 3,
        "tracking.stalled": 1,
    }
    by_carrier = (
        await notifier.client.get(
            "/analytics/anomalies", params={**window, "by": "carrier", "team": "logistics"}
        )
    ).json()
    assert [(s["key"], s["total"]) for s in by_carrier["series"]] == [("sf", 1)]
    too_long = await notifier.client.get(
        "/analytics/anomalies", params={"from": "2020-01-01T00:00:00Z", "bucket": "hour"}
    )
    assert too_long.status_code == 422

    found = await items(notifier.client, team="warehouse")
    assert (await notifier.client.post(f"/work-items/{found[0]['id']}/claim")).status_code == 200
    assert (
        await notifier.client.post(f"/work-items/{found[0]['id']}/resolve", json={})
    ).status_code == 200
    assert (
        await notifier.client.post(
            f"/work-items/{found[1]['id']}/dismiss", json={"reason": "known"}
        )
    ).status_code == 200
    now = datetime.now(UTC)
    recent = {
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": (now + timedelta(minutes=1)).isoformat(),
    }
    by_state = (
        await notifier.client.get("/analytics/work-items", params={**recent, "by": "state"})
    ).json()
    assert {s["key"]: s["total"] for s in by_state["series"]} == {
        "open": 2,
        "resolved": 1,
        "dismissed": 1,
    }
    by_reason = (
        await notifier.client.get("/analytics/work-items", params={**recent, "by": "reason"})
    ).json()
    assert {s["key"]: s["total"] for s in by_reason["series"]} == {"(none)": 3, "known": 1}
    times = (await notifier.client.get("/analytics/response-times", params=recent)).json()
    rows = {(r["team"], r["severity"]): r for r in times["rows"]}
    warehouse = rows[("warehouse", "P3")]
    assert (warehouse["items"], warehouse["claimed"], warehouse["resolved"]) == (3, 1, 1)
    assert warehouse["time_to_claim_s"]["p50"] >= 0 and warehouse["time_to_resolve_s"]["avg"] >= 0
    assert rows[("logistics", "P3")]["time_to_claim_s"] == {"p50": None, "p90": None, "avg": None}


async def test_a_restart_mid_flow_loses_nothing_and_the_open_gauge_is_recomputed(
    settings: Settings, start_service: Any
) -> None:
    fast = settings.model_copy(update={"job_interval_s": 0.1})
    notifier = await start_service(NOTIFIER, settings_=fast)
    await notifier.wait_assigned()
    await publish_routed(
        settings, routed(anomaly("r-1", team="finance", rule="payment.failed", severity="P2"))
    )
    await wait_until(lambda: items(notifier.client, team="finance"), what="the first item")
    await notifier.stop()

    # While the notifier is down: a second group, and the first one again.
    await publish_routed(
        settings, routed(anomaly("r-2", team="finance", rule="payment.failed", severity="P2"))
    )
    await publish_routed(
        settings, routed(anomaly("r-1", team="finance", rule="payment.failed", severity="P2"))
    )
    notifier = await start_service(NOTIFIER, settings_=fast)
    await notifier.wait_assigned()
    await consumed(notifier, "notifier.work-items", 3)
    found = await items(notifier.client, team="finance")
    assert sorted(i["group_key"] for i in found) == ["r-1", "r-2"]
    assert all(i["anomaly_count"] == 1 for i in found)

    def gauge() -> float | None:
        return REGISTRY.get_sample_value(
            "orderguard_work_items_open", {"team": "finance", "severity": "P2"}
        )

    async def gauge_is(value: float) -> bool:
        return gauge() == value

    await wait_until(lambda: gauge_is(2.0), what="the open gauge at 2")
    await notifier.client.post(f"/work-items/{found[0]['id']}/dismiss", json={"reason": "test"})
    await wait_until(lambda: gauge_is(1.0), what="the open gauge at 1")
