"""The labelled scenario end to end on the real broker and database: the five services run
in-process with the scenario's scaled detectors file; a small shop (a few dozen orders, every
anomaly kind injected once) is played through their HTTP APIs, payments.events and carrier
scans (signed webhook and carriers.scans); every injected anomaly is raised exactly once, not
before it is due, and — when the player kept its plan — nothing else is raised."""

from __future__ import annotations

import asyncio
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from testkit import tuned, wait_until

from orderguard.cli.services_registry import OrderguardSettings
from orderguard.scenario.observe import Observer
from orderguard.scenario.plan import KINDS
from orderguard.scenario.player import Clients
from orderguard.scenario.quality import compare, player_kept_its_plan
from orderguard.scenario.runner import ScenarioOptions, Target, read_labels, run_scenario
from orderguard.scenario.scale import SYSTEM_ENV
from orderguard.services.aftersales.bootstrap import DEFINITION as AFTERSALES
from orderguard.services.inventory.bootstrap import DEFINITION as INVENTORY
from orderguard.services.logistics.bootstrap import DEFINITION as LOGISTICS
from orderguard.services.notifier.bootstrap import DEFINITION as NOTIFIER
from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared.settings import Settings

CARRIER_SECRET = "scenario-sf-secret"
# Below the tightest margin of a clean story at this test's speed-up (15 % of the 3-day delivery
# promise: 2.7 s at 14,400): a player at most this late played the labelled shop.
PLAYER_LAG_TOLERANCE_S = 2.0


def scenario_settings(settings: Settings, options: ScenarioOptions, tmp_path: Path) -> Settings:
    detectors = tmp_path / "detectors.yaml"
    detectors.write_text(options.scale().detectors_yaml())
    # What SYSTEM_ENV sets, read as the services read it (whole sections: it names few fields).
    with pytest.MonkeyPatch.context() as env:
        for name, value in SYSTEM_ENV.items():
            env.setenv(name, value)
        system = OrderguardSettings()
    named = {name.removeprefix("ORDERGUARD_").lower().split("__")[0] for name in SYSTEM_ENV}
    return tuned(
        settings.model_copy(update={name: getattr(system, name) for name in named}),
        detectors_file=str(detectors),
        logistics={"carrier_secrets": {"sf-express": SecretStr(CARRIER_SECRET)}},
        job_interval_s=0.5,
    )


async def test_every_injected_anomaly_is_raised_once_not_early_and_nothing_else(
    settings: Settings, start_service: Any, tmp_path: Path
) -> None:
    options = ScenarioOptions(
        seed=7,
        speedup=14_400,  # a simulated hour is a quarter of a second
        rate=38,  # an order every simulated hour
        orders=24,
        injections_per_kind=1,
        tolerance_s=10,
        tag="e2e",
    )
    system = scenario_settings(settings, options, tmp_path)
    services = {}
    for definition in (ORDER, INVENTORY, LOGISTICS, AFTERSALES, NOTIFIER):
        services[definition.name] = await start_service(definition, settings_=system)
    for service in services.values():
        await service.wait_assigned()
    target = Target(
        Clients({name: service.client for name, service in services.items()}),
        system.kafka_bootstrap,
        system.topic_prefix,
        {"sf-express": CARRIER_SECRET},
    )
    lines: list[str] = []
    labels_path = tmp_path / "labels.jsonl"
    since = datetime.now(UTC) - timedelta(seconds=1)

    await run_scenario(options, target, labels_path, check=False, say=lines.append)

    header, labels = read_labels(labels_path)
    summary = "\n".join([*lines, f"player behind its plan (s): {header['player_lag_s']}"])
    assert header["unplayed"] == [], summary
    assert sorted(label.kind for label in labels) == sorted(KINDS), summary
    # What the system raised, waited for as facts: every injection raised (however loaded the
    # machine, which only delays it), then, once the last window closed, nothing else. How soon
    # it is raised is measured by bench/detection_quality.py, not asserted here.
    observer = Observer(system.kafka_bootstrap, system.topic_prefix, since)
    await observer.start()
    try:

        async def every_injection_raised() -> bool:
            return all(o.raised for o in compare(labels, observer.observations).outcomes)

        await wait_until(
            every_injection_raised, timeout=120, interval=0.5, what="every injection raised"
        )
        last_window_end = max(label.window_end for label in labels)
        await asyncio.sleep(max(0.0, (last_window_end - datetime.now(UTC)).total_seconds()))
        observations = await observer.drain()
    finally:
        await observer.stop()
    report = compare(labels, observations)
    summary = "\n".join([summary, *report.lines()])
    print(summary)
    assert [(o.label.id, o.verdict) for o in report.outcomes if o.verdict == "early"] == [], summary
    assert all(o.raised == 1 for o in report.outcomes), summary
    # A player that fell behind its plan played another shop than the labelled one: its clean
    # parcels really went silent, were delivered past their promise (at load 12 it ran 18 s
    # behind and 25 clean parcels stalled or went overdue). So "nothing else" is the claim only
    # of a run whose player kept its plan, as in bench/detection_quality.py.
    if player_kept_its_plan(header["player_lag_s"], PLAYER_LAG_TOLERANCE_S):
        assert report.false_alarms == [], summary
    else:
        warnings.warn(
            f"false alarms not judged: the player ran up to {header['player_lag_s']['max']:.1f} s"
            f" behind its plan ({len(report.false_alarms)} raised on the shop it really played)",
            stacklevel=1,
        )
