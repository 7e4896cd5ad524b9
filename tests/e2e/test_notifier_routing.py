"""The notifier against the real broker and database: an anomaly is routed and notified once,
however often and from wherever it arrives; routes with `continue` and the root default."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import REGISTRY
from testkit import RunningService, events_of_type, publish_event, tuned, wait_until

from orderguard.services.notifier.bootstrap import DEFINITION as NOTIFIER
from orderguard.shared.envelope import Envelope, new_event_id
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.settings import Settings
from orderguard.shared.topics import TEAMS
from orderguard.shared.tracing import trace_id

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def detected(
    fingerprint: str,
    rule: str = "stock.low",
    source: str = "/orderguard/inventory/detector/stock.low",
    status: str = "firing",
    team: str = "warehouse",
) -> Envelope:
    now = datetime.now(UTC)
    data = AnomalyDetected(
        rule=rule,
        fingerprint=fingerprint,
        status=status,  # type: ignore[arg-type]
        severity="P3",
        team=team,  # type: ignore[arg-type]
        labels={"sku": "SKU-1", "warehouse": "main", "severity": "P3", "team": team},
        summary="SKU SKU-1 in main: 2 available, below its threshold of 5",
        event_time=now,
        detected_at=now,
        source_event_id="e-1",
    )
    return Envelope(
        type="anomaly.detected.v1",
        source=source,
        subject=fingerprint,
        data=data.model_dump(mode="json"),
        traceparent=TRACEPARENT,
    )


async def applied(service: RunningService, read_by: str) -> int:
    """Records the notifier's worker has consumed on what the router reads (the anomalies) or
    what the notifications consumer reads (the queues)."""
    topics = service.runtime.topics
    if read_by == "notifier.router":
        return await service.consumed_on(topics.anomalies)
    return await service.consumed_on(*(topics.queue(team) for team in TEAMS))


async def settled(service: RunningService, router_records: int, queue_records: int) -> None:
    """Wait until the router consumed `router_records`, its outbox is published, and the
    notification consumer consumed what reached the queues; then check that was `queue_records`."""

    async def router_done() -> bool:
        return await applied(service, "notifier.router") >= router_records

    async def outbox_drained() -> bool:
        async with service.runtime.pool.acquire() as conn:
            return await conn.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0

    async def notifications_done() -> bool:
        return await applied(service, "notifier.notifications") >= queue_records

    await wait_until(router_done, what=f"router to consume {router_records} anomalies")
    assert await applied(service, "notifier.router") == router_records
    await wait_until(outbox_drained, what="router outbox published")
    await wait_until(
        notifications_done, what=f"notifier to consume {queue_records} routed anomalies"
    )
    # Everything the router published is on the queues now; more than expected is a double route.
    queued = [
        record
        for team in TEAMS
        for record in await events_of_type(
            service.runtime.settings, service.runtime.topics.queue(team), "anomaly.routed.v1"
        )
    ]
    assert len(queued) == queue_records, [(e.subject, e.data["queue"]) for e in queued]
    await wait_until(notifications_done, what="notifier to consume every routed anomaly")
    assert await applied(service, "notifier.notifications") == queue_records


async def notifications(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/notifications", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_an_anomaly_is_routed_and_notified_once_however_often_it_arrives(
    settings: Settings, start_service: Any
) -> None:
    anomalies = settings.topic_prefix + "anomalies.detected"
    warehouse = settings.topic_prefix + "queues.warehouse"
    routed_before = counter(
        "orderguard_anomalies_routed_total", queue="warehouse", outcome="routed"
    )
    duplicate_before = counter(
        "orderguard_anomalies_routed_total", queue="warehouse", outcome="duplicate"
    )
    recorded_before = counter(
        "orderguard_notifications_total", channel="in_app", outcome="recorded"
    )
    notified_twice_before = counter(
        "orderguard_notifications_total", channel="in_app", outcome="duplicate"
    )

    notifier = await start_service(NOTIFIER)
    await notifier.wait_assigned()
    first = detected("fp-stock-1")
    await publish_event(settings, anomalies, first)

    [routed] = await wait_until(
        lambda: events_of_type(settings, warehouse, "anomaly.routed.v1"),
        what="anomaly.routed.v1 on queues.warehouse",
    )
    assert (routed.subject, routed.source) == ("fp-stock-1", "/orderguard/notifier/router")
    # The routed event is a new span of the anomaly's trace.
    assert trace_id(routed.traceparent) == trace_id(TRACEPARENT)
    assert routed.traceparent != TRACEPARENT
    assert routed.data["route"] == "warehouse-stock"
    assert (routed.data["queue"], routed.data["channels"]) == ("warehouse", ["in_app"])
    assert routed.data["anomaly"] == first.data

    [notification] = await wait_until(
        lambda: notifications(notifier.client, fingerprint="fp-stock-1"),
        what="the in_app notification",
    )
    assert {
        k: notification[k] for k in ("channel", "queue", "route", "rule", "severity", "status")
    } == {
        "channel": "in_app",
        "queue": "warehouse",
        "route": "warehouse-stock",
        "rule": "stock.low",
        "severity": "P3",
        "status": "recorded",
    }
    assert notification["summary"] == first.data["summary"]
    assert notification["labels"] == first.data["labels"]
    one = await notifier.client.get(f"/notifications/{notification['id']}")
    assert one.status_code == 200 and one.json() == notification

    # The same event redelivered; the same anomaly with a new event id from another detector driver.
    await publish_event(settings, anomalies, first)
    await publish_event(
        settings, anomalies, detected("fp-stock-1", source="/orderguard/faust/detector/stock.low")
    )
    await settled(notifier, router_records=3, queue_records=1)

    # A restart forgets nothing: the fingerprints routed are in the database.
    await notifier.stop()
    notifier = await start_service(NOTIFIER)
    await notifier.wait_assigned()
    await publish_event(settings, anomalies, detected("fp-stock-1"))
    await settled(notifier, router_records=4, queue_records=1)
    # A routed anomaly replayed onto the queue under a new event id notifies nobody again.
    replayed = routed.model_copy(update={"id": new_event_id()})
    await publish_event(settings, warehouse, replayed)
    await settled(notifier, router_records=4, queue_records=2)

    # Grouped routes key by group key, the replay by fingerprint: partitions may differ.
    assert sorted(
        e.id for e in await events_of_type(settings, warehouse, "anomaly.routed.v1")
    ) == sorted([routed.id, replayed.id])
    assert [n["id"] for n in await notifications(notifier.client)] == [notification["id"]]
    assert (
        counter("orderguard_anomalies_routed_total", queue="warehouse", outcome="routed")
        - routed_before
        == 1
    )
    # The same event id is dropped by the engine; the two new ids reach the router as duplicates.
    assert (
        counter("orderguard_anomalies_routed_total", queue="warehouse", outcome="duplicate")
        - duplicate_before
        == 2
    )
    assert (
        counter("orderguard_notifications_total", channel="in_app", outcome="recorded")
        - recorded_before
        == 1
    )
    assert (
        counter("orderguard_notifications_total", channel="in_app", outcome="duplicate")
        - notified_twice_before
        == 1
    )


ROUTING = """
route:
  queue: risk
  channels: [in_app]
  routes:
    - name: refunds-to-finance
      matchers: ['rule="refund.issued"']
      queue: finance
      continue: true
    - name: refunds-audit
      matchers: ['rule=~"refund\\..+"']
      queue: customer_service
      channels: []
"""


async def test_routes_with_continue_the_root_default_and_the_http_api(
    settings: Settings, start_service: Any, tmp_path: Path
) -> None:
    routing_file = tmp_path / "routing.yaml"
    routing_file.write_text(textwrap.dedent(ROUTING))
    notifier = await start_service(
        NOTIFIER, settings_=tuned(settings, notifier={"routing_file": str(routing_file)})
    )
    await notifier.wait_assigned()
    anomalies = settings.topic_prefix + "anomalies.detected"

    await publish_event(
        settings, anomalies, detected("fp-refund", rule="refund.issued", team="finance")
    )
    # Different keys go to different partitions: wait, so that "newest first" has one answer.
    await wait_until(
        lambda: notifications(notifier.client, fingerprint="fp-refund"), what="refund notified"
    )
    await publish_event(
        settings, anomalies, detected("fp-mystery", rule="mystery.rule", team="risk")
    )
    await publish_event(
        settings, anomalies, detected("fp-resolved", rule="refund.issued", status="resolved")
    )
    await settled(notifier, router_records=3, queue_records=3)

    routed_by_queue = {
        team: [
            (e.subject, e.data["route"])
            for e in await events_of_type(
                settings, settings.topic_prefix + f"queues.{team}", "anomaly.routed.v1"
            )
        ]
        for team in TEAMS
    }
    assert routed_by_queue == {
        "finance": [("fp-refund", "refunds-to-finance")],
        "customer_service": [
            ("fp-refund", "refunds-audit")
        ],  # continue: routed twice, no channel here
        "risk": [("fp-mystery", "root")],  # matched by no route: the root default
        "warehouse": [],
        "logistics": [],
    }
    # Newest first; the audit route names no channel, so it notifies nobody.
    assert [(n["queue"], n["fingerprint"]) for n in await notifications(notifier.client)] == [
        ("risk", "fp-mystery"),
        ("finance", "fp-refund"),
    ]
    assert [n["fingerprint"] for n in await notifications(notifier.client, queue="finance")] == [
        "fp-refund"
    ]
    assert [
        n["fingerprint"] for n in await notifications(notifier.client, rule="mystery.rule")
    ] == ["fp-mystery"]
    assert len(await notifications(notifier.client, limit=1)) == 1
    assert await notifications(notifier.client, since="2999-01-01T00:00:00Z") == []
    assert len(await notifications(notifier.client, since="2000-01-01T00:00:00")) == 2

    tree = (await notifier.client.get("/routing")).json()
    assert tree["source"] == str(routing_file)
    assert tree["route"]["queue"] == "risk"
    assert [(r["name"], r["matchers"], r["continue"]) for r in tree["route"]["routes"]] == [
        ("refunds-to-finance", ['rule="refund.issued"'], True),
        ("refunds-audit", ['rule=~"refund\\\\..+"'], False),
    ]

    for bad in ({"limit": 0}, {"limit": 501}, {"queue": "nobody"}, {"since": "yesterday"}):
        response = await notifier.client.get("/notifications", params=bad)
        assert response.status_code == 422, bad
        assert response.headers["content-type"] == "application/problem+json"
    missing = await notifier.client.get("/notifications/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["type"].endswith("/notification-not-found")
    assert (await notifier.client.get("/notifications/not-a-uuid")).status_code == 422
    anonymous = await notifier.client.get("/routing", headers={"X-API-Key": ""})
    assert anonymous.status_code == 401
