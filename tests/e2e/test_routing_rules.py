"""The router on the real broker and database: groups with durable timers (across a restart),
resolved updates, inhibition with `equal` labels, silences over HTTP, and hot reload."""

from __future__ import annotations

import os
import signal
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY
from testkit import (
    RunningService,
    events_of_type,
    publish_batch,
    publish_event,
    tuned,
    wait_until,
)

from orderguard.services.notifier.bootstrap import DEFINITION as NOTIFIER
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.settings import Settings


def anomaly(fingerprint: str, rule: str, status: str = "firing", **labels: str) -> Envelope:
    now = datetime.now(UTC)
    data = AnomalyDetected(
        rule=rule,
        fingerprint=fingerprint,
        status=status,  # type: ignore[arg-type]
        severity="P3",
        team="logistics",
        labels=labels,
        summary=f"{rule} {fingerprint}",
        event_time=now,
        detected_at=now,
        source_event_id=f"src-{fingerprint}",
    )
    return Envelope(
        type="anomaly.detected.v1",
        source="/test/detector",
        subject=fingerprint,
        data=data.model_dump(mode="json"),
    )


async def applied(service: RunningService) -> int:
    """Anomalies the notifier's worker (its router) has consumed."""
    return await service.consumed_on(service.runtime.topics.anomalies)


async def routed_on(settings: Settings, team: str) -> list[Envelope]:
    return await events_of_type(
        settings, settings.topic_prefix + f"queues.{team}", "anomaly.routed.v1"
    )


async def wait_routed(settings: Settings, team: str, count: int) -> list[Envelope]:
    async def enough() -> list[Envelope] | None:
        found = await routed_on(settings, team)
        return found if len(found) >= count else None

    found = await wait_until(enough, timeout=60, what=f"{count} routed on queues.{team}")
    assert len(found) == count, [(e.subject, e.data["anomaly"]["status"]) for e in found]
    return found


async def start(
    start_service: Any,
    settings: Settings,
    routing_file: Path,
    job_interval_s: float = 0.2,
    **overrides: Any,
) -> RunningService:
    configured = tuned(
        settings,
        job_interval_s=job_interval_s,
        notifier={
            "routing_file": str(routing_file),
            "routing_reload_interval_s": 0.2,
            **overrides,
        },
    )
    service = await start_service(NOTIFIER, settings_=configured)
    await service.wait_assigned()
    return service


def routing(tmp_path: Path, text: str, name: str = "routing.yaml") -> Path:
    file = tmp_path / name
    file.write_text(textwrap.dedent(text))
    return file


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


GROUPED = """
route:
  queue: customer_service
  routes:
    - name: stock
      matchers: ['rule="stock.low"']
      queue: warehouse
      group_by: [warehouse]
      group_wait: 3s
      group_interval: 2s
      repeat_interval: 1h
      raise_severity_to: P2
"""


async def test_groups_flush_once_after_group_wait_across_a_restart_and_carry_resolutions(
    settings: Settings, start_service: Any, tmp_path: Path
) -> None:
    file = routing(tmp_path, GROUPED)
    # Before the restart the groups must still wait, however slow the machine: this instance
    # runs no flush job after its first (empty) run, and the three anomalies arrive in one
    # record batch, applied in one transaction, so no arrival finds a group past its group_wait.
    notifier = await start(start_service, settings, file, job_interval_s=3600)
    anomalies = settings.topic_prefix + "anomalies.detected"
    sent_at = datetime.now(UTC)
    await publish_batch(
        settings,
        anomalies,
        [
            anomaly(fp, "stock.low", sku=fp, warehouse=warehouse)
            for fp, warehouse in (("fp-a", "main"), ("fp-b", "main"), ("fp-c", "east"))
        ],
    )

    async def consumed() -> bool:
        return await applied(notifier) >= 3

    await wait_until(consumed, timeout=60, what="router consumed 3 anomalies")
    async with notifier.runtime.pool.acquire() as conn:
        groups = await conn.fetch("SELECT group_key, next_flush_at FROM route_groups")
    assert sorted(g["group_key"] for g in groups) == [
        'stock:{warehouse="east"}',
        'stock:{warehouse="main"}',
    ]
    shown = (await notifier.client.get("/routing/groups")).json()
    assert sorted((g["group_key"], g["firing"], g["pending"], g["flushes"]) for g in shown) == [
        ('stock:{warehouse="east"}', 1, 1, 0),
        ('stock:{warehouse="main"}', 2, 2, 0),
    ]
    # Restart while the groups wait: their timers are rows, so nothing is lost or doubled.
    await notifier.stop()
    notifier = await start(start_service, settings, file)
    routed = await wait_routed(settings, "warehouse", 3)
    by_group = sorted((e.data["group_key"], e.subject) for e in routed)
    assert by_group == [
        ('stock:{warehouse="east"}', "fp-c"),
        ('stock:{warehouse="main"}', "fp-a"),
        ('stock:{warehouse="main"}', "fp-b"),
    ]
    for envelope in routed:
        routed_at = datetime.fromisoformat(envelope.data["routed_at"])
        assert routed_at - sent_at >= timedelta(seconds=3), "flushed before group_wait"
        # The route raised it; the anomaly keeps the rule's own.
        assert (envelope.data["severity"], envelope.data["anomaly"]["severity"]) == ("P2", "P3")
    async with notifier.runtime.pool.acquire() as conn:
        flushes = await conn.fetch("SELECT group_key, flushes FROM route_groups ORDER BY 1")
    assert [row["flushes"] for row in flushes] == [1, 1]

    # fp-a resolves: the update goes to the same group, group_interval after the last flush.
    await publish_event(
        settings, anomalies, anomaly("fp-a", "stock.low", "resolved", sku="fp-a", warehouse="main")
    )
    routed = await wait_routed(settings, "warehouse", 4)
    [update] = [e for e in routed if e.data["anomaly"]["status"] == "resolved"]
    assert (update.subject, update.data["anomaly"]["status"], update.data["group_key"]) == (
        "fp-a",
        "resolved",
        'stock:{warehouse="main"}',
    )
    # The resolution redelivered under a new id changes nothing.
    await publish_event(
        settings, anomalies, anomaly("fp-a", "stock.low", "resolved", sku="fp-a", warehouse="main")
    )

    async def consumed_all() -> bool:
        return await applied(notifier) >= 5

    await wait_until(consumed_all, what="router consumed the repeat")
    assert len(await routed_on(settings, "warehouse")) == 4


INHIBITING = """
route:
  queue: customer_service
  routes:
    - name: shipments
      matchers: ['rule=~"shipment\\\\..+"']
      queue: logistics
inhibit_rules:
  - name: carrier-outage
    source_matchers: ['rule="shipment.carrier_outage"']
    target_matchers: ['rule="shipment.stalled"']
    equal: [carrier]
"""


async def test_a_carrier_outage_inhibits_its_stalls_until_it_resolves(
    settings: Settings, start_service: Any, tmp_path: Path
) -> None:
    notifier = await start(start_service, settings, routing(tmp_path, INHIBITING))
    anomalies = settings.topic_prefix + "anomalies.detected"
    inhibited_before = sample("orderguard_anomalies_suppressed_total", reason="inhibited")
    released_before = sample("orderguard_anomalies_released_total", reason="inhibited")
    await publish_event(
        settings, anomalies, anomaly("outage-sf", "shipment.carrier_outage", carrier="sf")
    )
    await wait_routed(settings, "logistics", 1)
    await publish_event(
        settings, anomalies, anomaly("stall-sf", "shipment.stalled", carrier="sf", parcel="P1")
    )
    await publish_event(
        settings, anomalies, anomaly("stall-dhl", "shipment.stalled", carrier="dhl", parcel="P2")
    )

    async def consumed() -> bool:
        return await applied(notifier) >= 3

    await wait_until(consumed, what="router consumed the stalls")
    routed = await wait_routed(settings, "logistics", 2)
    assert sorted(e.subject for e in routed) == ["outage-sf", "stall-dhl"]
    counts = (await notifier.client.get("/suppressed")).json()
    assert counts["inhibited"] == {"held": 1, "total": 1}
    assert (
        sample("orderguard_anomalies_suppressed_total", reason="inhibited") - inhibited_before == 1
    )

    # The outage resolves: its resolution is routed, and the stall it held back too.
    await publish_event(
        settings,
        anomalies,
        anomaly("outage-sf", "shipment.carrier_outage", "resolved", carrier="sf"),
    )
    routed = await wait_routed(settings, "logistics", 4)
    # Topics are read partition by partition: compare as sets.
    assert sorted((e.subject, e.data["anomaly"]["status"]) for e in routed) == [
        ("outage-sf", "firing"),
        ("outage-sf", "resolved"),
        ("stall-dhl", "firing"),
        ("stall-sf", "firing"),
    ]
    counts = (await notifier.client.get("/suppressed")).json()
    assert counts["inhibited"] == {"held": 0, "total": 1}
    assert sample("orderguard_anomalies_released_total", reason="inhibited") - released_before == 1


INHIBITING_LATER = """
route:
  queue: customer_service
  routes:
    - name: outages
      matchers: ['rule="shipment.carrier_outage"']
      queue: logistics
    - name: stalls
      matchers: ['rule="shipment.stalled"']
      queue: logistics
      group_by: [carrier]
      group_wait: 3s
      group_interval: 1s
      repeat_interval: 1h
inhibit_rules:
  - name: carrier-outage
    source_matchers: ['rule="shipment.carrier_outage"']
    target_matchers: ['rule="shipment.stalled"']
    equal: [carrier]
"""


async def test_an_outage_that_fires_after_its_stalls_still_inhibits_them(
    settings: Settings, start_service: Any, tmp_path: Path
) -> None:
    notifier = await start(start_service, settings, routing(tmp_path, INHIBITING_LATER))
    anomalies = settings.topic_prefix + "anomalies.detected"
    inhibited_before = sample("orderguard_anomalies_suppressed_total", reason="inhibited")
    # The stall first, waiting in its group for group_wait; the outage of its carrier after it.
    await publish_event(
        settings, anomalies, anomaly("stall-sf", "shipment.stalled", carrier="sf", parcel="P1")
    )

    async def consumed(count: int) -> bool:
        return await applied(notifier) >= count

    await wait_until(lambda: consumed(1), what="router consumed the stall")
    await publish_event(
        settings, anomalies, anomaly("outage-sf", "shipment.carrier_outage", carrier="sf")
    )
    await wait_until(lambda: consumed(2), what="router consumed the outage")

    async def first_flushes_done() -> bool:
        groups = (await notifier.client.get("/routing/groups")).json()
        return all(group["flushes"] > 0 for group in groups)

    await wait_until(first_flushes_done, what="the stall group's group_wait over")
    routed = await wait_routed(settings, "logistics", 1)
    assert [e.subject for e in routed] == ["outage-sf"]  # the stall was held back
    counts = (await notifier.client.get("/suppressed")).json()
    assert counts["inhibited"] == {"held": 1, "total": 1}
    assert (
        sample("orderguard_anomalies_suppressed_total", reason="inhibited") - inhibited_before == 1
    )

    # The outage resolves: the stall still firing is routed after all (its group's wait again).
    await publish_event(
        settings,
        anomalies,
        anomaly("outage-sf", "shipment.carrier_outage", "resolved", carrier="sf"),
    )
    routed = await wait_routed(settings, "logistics", 3)
    assert sorted((e.subject, e.data["anomaly"]["status"]) for e in routed) == [
        ("outage-sf", "firing"),
        ("outage-sf", "resolved"),
        ("stall-sf", "firing"),
    ]
    assert (await notifier.client.get("/suppressed")).json()["inhibited"]["held"] == 0


SILENCEABLE = """
route:
  queue: customer_service
  routes:
    - name: shipments
      matchers: ['rule=~"shipment\\\\..+"']
      queue: logistics
"""


async def test_silences_over_http_mute_count_and_release_on_expiry(
    settings: Settings, start_service: Any, tmp_path: Path
) -> None:
    notifier = await start(start_service, settings, routing(tmp_path, SILENCEABLE))
    client = notifier.client
    anomalies = settings.topic_prefix + "anomalies.detected"
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()

    bad_requests = [
        ({"matchers": ['carrier=="sf"'], "comment": "x", "ends_at": later}, "matchers"),
        ({"matchers": ['carrier=~"("'], "comment": "x", "ends_at": later}, "bad regular"),
        ({"matchers": ['carrier=""'], "comment": "x", "ends_at": later}, "without labels"),
        ({"matchers": ['carrier="sf"'], "comment": "", "ends_at": later}, "comment"),
        (
            {"matchers": ['carrier="sf"'], "comment": "x", "ends_at": "2000-01-01T00:00:00Z"},
            "ends_at",
        ),
    ]
    for body, words in bad_requests:
        response = await client.post("/silences", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert words in response.text, response.text

    created = await client.post(
        "/silences",
        json={"matchers": ['carrier="sf"'], "comment": "sf maintenance window", "ends_at": later},
        headers={"Idempotency-Key": "silence-1"},
    )
    assert created.status_code == 201, created.text
    silence = created.json()
    assert created.headers["Location"] == f"/silences/{silence['id']}"
    assert silence["state"] == "active" and silence["muted"] == 0
    assert silence["author"].startswith("silences:write#")  # the caller of the API key
    again = await client.post(
        "/silences",
        json={"matchers": ['carrier="sf"'], "comment": "sf maintenance window", "ends_at": later},
        headers={"Idempotency-Key": "silence-1"},
    )
    assert again.json()["id"] == silence["id"]
    pending = await client.post(
        "/silences",
        json={
            "matchers": ['carrier="dhl"'],
            "comment": "tomorrow",
            "starts_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
            "ends_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
        },
    )
    assert pending.json()["state"] == "pending"

    await publish_event(
        settings, anomalies, anomaly("stall-sf", "shipment.stalled", carrier="sf", parcel="P1")
    )
    await publish_event(
        settings, anomalies, anomaly("stall-dhl", "shipment.stalled", carrier="dhl", parcel="P2")
    )
    await wait_routed(settings, "logistics", 1)

    async def muted_one() -> bool:
        return (await client.get(f"/silences/{silence['id']}")).json()["muted"] == 1

    await wait_until(muted_one, what="the silence counts what it muted")
    assert [
        s["id"] for s in (await client.get("/silences", params={"state": "active"})).json()
    ] == [silence["id"]]
    assert [
        s["id"] for s in (await client.get("/silences", params={"state": "pending"})).json()
    ] == [pending.json()["id"]]
    assert (await client.get("/silences", params={"state": "expired"})).json() == []
    assert (await client.get("/suppressed")).json()["silenced"] == {"held": 1, "total": 1}

    expired = await client.post(f"/silences/{silence['id']}/expire")
    assert expired.status_code == 200 and expired.json()["state"] == "expired"
    assert expired.json()["expired_by"].startswith("silences:write#")
    # What it still held back is routed by the release job.
    routed = await wait_routed(settings, "logistics", 2)
    assert sorted(e.subject for e in routed) == ["stall-dhl", "stall-sf"]
    assert (await client.get(f"/silences/{silence['id']}")).json()["muted"] == 1
    assert (await client.get("/suppressed")).json()["silenced"] == {"held": 0, "total": 1}
    deleted = await client.delete(f"/silences/{pending.json()['id']}")
    assert deleted.json()["state"] == "expired"
    assert len((await client.get("/silences", params={"state": "expired"})).json()) == 2
    missing = await client.get("/silences/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["type"].endswith("/silence-not-found")


FINANCE = """
route:
  queue: customer_service
  routes:
    - name: payments
      matchers: ['rule="payment.failures"']
      queue: finance
"""
RISK = FINANCE.replace("name: payments", "name: payments-to-risk").replace(
    "queue: finance", "queue: risk"
)


async def test_hot_reload_swaps_valid_files_keeps_the_old_one_on_errors_and_resolutions_follow_the_firing(
    settings: Settings, start_service: Any, tmp_path: Path
) -> None:
    file = routing(tmp_path, FINANCE)
    notifier = await start(start_service, settings, file)
    client = notifier.client
    anomalies = settings.topic_prefix + "anomalies.detected"
    first_version = (await client.get("/routing")).json()["version"]
    await publish_event(settings, anomalies, anomaly("pay-1", "payment.failures", order="O-1"))
    await wait_routed(settings, "finance", 1)

    file.write_text(textwrap.dedent(RISK))
    os.utime(file, (1_900_000_000, 1_900_000_000))

    async def reloaded() -> dict[str, Any] | None:
        shown = (await client.get("/routing")).json()
        return shown if shown["version"] != first_version else None

    shown = await wait_until(reloaded, what="the changed routing file in force")
    assert shown["route"]["routes"][0]["name"] == "payments-to-risk"
    assert shown["last_reload_error"] is None

    # A resolution goes where the firing went (finance), a new anomaly by the new file (risk);
    # across a restart of the notifier.
    await notifier.stop()
    notifier = await start(start_service, settings, file)
    client = notifier.client
    await publish_event(
        settings, anomalies, anomaly("pay-1", "payment.failures", "resolved", order="O-1")
    )
    await publish_event(settings, anomalies, anomaly("pay-2", "payment.failures", order="O-2"))
    finance = await wait_routed(settings, "finance", 2)
    assert [(e.subject, e.data["anomaly"]["status"]) for e in finance] == [
        ("pay-1", "firing"),
        ("pay-1", "resolved"),
    ]
    [risk] = await wait_routed(settings, "risk", 1)
    assert (risk.subject, risk.data["route"]) == ("pay-2", "payments-to-risk")
    in_force = (await client.get("/routing")).json()["version"]

    # A broken file is rejected: the old routes stay, GET /routing says why.
    file.write_text("route:\n  queue: finanse\n")
    os.utime(file, (1_900_000_100, 1_900_000_100))

    async def rejected() -> dict[str, Any] | None:
        shown = (await client.get("/routing")).json()
        return shown if shown["last_reload_error"] else None

    shown = await wait_until(rejected, what="the broken routing file rejected")
    assert shown["version"] == in_force
    assert "unknown queue 'finanse'" in shown["last_reload_error"]["error"]
    forced = await client.post("/routing/reload")
    assert forced.status_code == 422
    assert forced.json()["version_in_force"] == in_force
    assert "finanse" in forced.json()["detail"]
    await publish_event(settings, anomalies, anomaly("pay-3", "payment.failures", order="O-3"))
    assert sorted(e.subject for e in await wait_routed(settings, "risk", 2)) == ["pay-2", "pay-3"]
    assert sample("orderguard_routing_config_last_reload_successful") == 0


async def test_sighup_reloads_the_routing_file(
    settings: Settings, start_service: Any, tmp_path: Path
) -> None:
    file = routing(tmp_path, FINANCE)
    # No polling: only SIGHUP (or POST /routing/reload) can bring the change in.
    notifier = await start(start_service, settings, file, routing_reload_interval_s=0)
    client = notifier.client
    first_version = (await client.get("/routing")).json()["version"]
    file.write_text(textwrap.dedent(RISK))
    assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, signal.SIG_IGN, None)
    os.kill(os.getpid(), signal.SIGHUP)

    async def reloaded() -> dict[str, Any] | None:
        shown = (await client.get("/routing")).json()
        return shown if shown["version"] != first_version else None

    shown = await wait_until(reloaded, what="the routing file reloaded on SIGHUP")
    assert shown["route"]["routes"][0]["name"] == "payments-to-risk"
    anomalies = settings.topic_prefix + "anomalies.detected"
    await publish_event(settings, anomalies, anomaly("pay-9", "payment.failures", order="O-9"))
    [risk] = await wait_routed(settings, "risk", 1)
    assert risk.data["route"] == "payments-to-risk"
