"""Backtest and live agree: stock changes through the live inventory detector and the router,
then `orderguard backtest` over the same topic range with the same rules and routing tree."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from testkit import events_of_type, wait_until
from typer.testing import CliRunner

from orderguard.cli.commands import app
from orderguard.cli.services_registry import STREAM_RULES, rule_catalogue
from orderguard.services.inventory.bootstrap import DEFINITION as INVENTORY
from orderguard.services.notifier.backtest import (
    compare,
    decode,
    live_record,
    read_topic_range,
    run_backtest,
)
from orderguard.services.notifier.bootstrap import DEFINITION as NOTIFIER
from orderguard.services.notifier.routing import load_routing
from orderguard.shared.detection.config import load_for
from orderguard.shared.settings import Settings
from orderguard.shared.topics import TEAMS

CHANGES = [  # sku, on_hand (threshold 5): what fires live
    ("SKU-X", 3),  # fires (episode 1)
    ("SKU-Y", 10),
    ("SKU-X", 2),  # same episode: quiet
    ("SKU-X", 9),  # recovered: resolves episode 1 (stock.recovered) and re-arms
    ("SKU-X", 1),  # fires (episode 2)
    ("SKU-Z", 0),  # fires, P2
    ("SKU-X", 8),  # resolves episode 2: the last record of the range
]


async def test_backtest_over_the_recorded_topic_agrees_with_what_fired_live(
    settings: Settings, start_service: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    inventory = await start_service(INVENTORY)
    notifier = await start_service(NOTIFIER)
    for service in (inventory, notifier):
        await service.wait_assigned()
    for sku, on_hand in CHANGES:
        response = await inventory.client.put(
            f"/stock/{sku}/main", json={"on_hand": on_hand, "low_stock_threshold": 5}
        )
        assert response.status_code == 200, response.text

    warehouse = settings.topic_prefix + "queues.warehouse"

    async def all_routed() -> bool:
        return len(await events_of_type(settings, warehouse, "anomaly.routed.v1")) >= 5

    await wait_until(all_routed, timeout=30, what="3 stock.low and 2 recoveries routed live")

    # The replay core, as a test would use it.
    envelopes = await read_topic_range(settings, notifier.runtime.topics.inventory)
    events = [e for e in map(decode, envelopes) if e is not None]
    assert len(events) == len(CHANGES)
    rules = load_for(settings, rule_catalogue()).enabled(STREAM_RULES)
    result = run_backtest(events, rules, load_routing())
    live = live_record(
        [
            envelope
            for topic in [
                notifier.runtime.topics.anomalies,
                *(notifier.runtime.topics.queue(team) for team in TEAMS),
            ]
            for envelope in await read_topic_range(settings, topic)
        ]
    )
    comparison = compare(result, live, rules)
    assert comparison.agree, (comparison.as_json(), live.routed, [e.id for e in events])
    # Every transition, with its time: SKU-X low -> recovered -> low -> recovered, SKU-Z low.
    live_steps = sorted((a.fingerprint, a.status, a.event_time, a.rule) for a in live.anomalies)
    replayed = sorted((f.fingerprint, f.status, f.event_time, f.rule) for f in result.fired)
    assert replayed == live_steps
    assert [(t.fingerprint, t.status, t.at, t.rule) for t in comparison.in_both] == live_steps
    assert len(live_steps) == 5
    assert {r.queue for r in result.routed} == {"warehouse"}
    firing = sorted(f.severity for f in result.fired if f.status == "firing")
    assert firing == ["P2", "P3", "P3"]
    assert [f.rule for f in result.fired if f.status == "resolved"] == ["stock.recovered"] * 2

    # The command, over the same topic range, with the same environment.
    monkeypatch.setenv("ORDERGUARD_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    monkeypatch.setenv("ORDERGUARD_TOPIC_PREFIX", settings.topic_prefix)
    outcome = await asyncio.to_thread(
        CliRunner().invoke, app, ["backtest", "--topic", "inventory.events", "--json"]
    )
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.stdout)
    assert report["events"] == len(CHANGES)
    assert report["comparison"]["agree"] is True
    assert (
        sorted(
            (t["fingerprint"], t["status"], datetime.fromisoformat(t["at"]), t["rule"])
            for t in report["comparison"]["in_both"]
        )
        == live_steps
    )
    assert [r["queue"] for r in report["routed"]] == ["warehouse"] * 5

    table = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["backtest", "--topic", "inventory.events", "--from-offset", "0", "--to-offset", "1"],
    )
    assert table.exit_code == 0, table.output
    assert "Would have fired" in table.stdout and "Compared with live" in table.stdout
    # Only the first record of each partition replayed: live fired more than that range shows
    # only where the range caused it, so the comparison still holds.
    assert "they agree" in table.stdout, table.stdout

    # By record time: everything since an hour ago, nothing from tomorrow on.
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat(timespec="seconds")
    for bounds, count in (
        (["--since", since[:19]], len(CHANGES)),
        (["--since", tomorrow[:19], "--no-live"], 0),
    ):
        timed = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            ["backtest", "--topic", "inventory.events", *bounds, "--json"],
        )
        assert timed.exit_code == 0, timed.output
        assert json.loads(timed.stdout)["events"] == count, bounds

    # No address given: the broker of the `orderguard up` running in --data-dir, whatever
    # port it chose (its status file, as `orderguard status` reads it).
    monkeypatch.delenv("ORDERGUARD_KAFKA_BOOTSTRAP")
    (tmp_path / "status.json").write_text(
        json.dumps(
            {
                "supervisor_pid": os.getpid(),
                "broker": {"bootstrap": settings.kafka_bootstrap},
                "services": {},
            }
        )
    )
    found = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["backtest", "--topic", "inventory.events", "--data-dir", str(tmp_path), "--json"],
    )
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout)["comparison"]["agree"] is True

    wrong = await asyncio.to_thread(CliRunner().invoke, app, ["backtest"])
    assert wrong.exit_code == 2 and "give --topic" in wrong.output
