"""One scenario run: plan, play with a live summary, write the labels, check what was raised."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orderguard.scenario.observe import Observer, read_observations
from orderguard.scenario.plan import Plan, ShopConfig, plan_scenario
from orderguard.scenario.player import Clients, Player, Progress
from orderguard.scenario.quality import Label, Report, compare, percentile
from orderguard.scenario.scale import Scale

# Events (HTTP calls and messages) an order's story makes on average: placing, paying, ~6 scans,
# sometimes a case; `--rate` is turned into an order arrival rate with it.
EVENTS_PER_ORDER = 9.5


@dataclass(frozen=True)
class ScenarioOptions:
    seed: int = 1
    speedup: float = 1440.0
    rate: float = 20.0  # events per real second
    duration_s: float = 120.0  # real seconds of order arrivals (when `orders` is not given)
    orders: int | None = None  # clean orders
    injections_per_kind: int | None = None  # default: one per 40 orders, at least one
    tolerance_s: float = 10.0
    tag: str | None = None
    closeness_floor_s: float = 30.0
    concurrency: int = 64  # the player's HTTP requests in flight (16 queued 10 s under load)

    def scale(self) -> Scale:
        return Scale(self.speedup, self.closeness_floor_s)

    def shop(self) -> ShopConfig:
        orders = self.orders or max(10, int(self.duration_s * self.rate / EVENTS_PER_ORDER))
        per_kind = (
            self.injections_per_kind
            if self.injections_per_kind is not None
            else max(1, orders // 40)
        )
        tag = self.tag or f"s{self.seed}-{datetime.now(UTC):%H%M%S}"
        return ShopConfig(
            orders=orders,
            order_interval_s=self.speedup * EVENTS_PER_ORDER / self.rate,
            injections_per_kind=per_kind,
            tag=tag,
        )

    def plan(self) -> Plan:
        return plan_scenario(self.seed, self.scale().windows(), self.shop())


@dataclass
class Target:
    """Where the system under test is."""

    clients: Clients
    kafka_bootstrap: str
    topic_prefix: str = ""
    carrier_secrets: dict[str, str] = field(default_factory=dict)


def write_labels(path: Path, header: dict[str, Any], labels: list[Label]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        out.write(json.dumps({"scenario": header}) + "\n")
        for label in labels:
            out.write(json.dumps(label.to_json(), ensure_ascii=False) + "\n")


def read_labels(path: Path) -> tuple[dict[str, Any], list[Label]]:
    header: dict[str, Any] = {}
    labels = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        data = json.loads(line)
        if "scenario" in data:
            header = data["scenario"]
        else:
            labels.append(Label.from_json(data))
    return header, labels


def spread_of(lags_s: list[float]) -> dict[str, float]:
    """p50, p95 and max of durations (seconds): how far behind its plan the player started
    its steps, how long they took."""
    ordered = sorted(lags_s)
    return {
        "p50": percentile(ordered, 50) or 0.0,
        "p95": percentile(ordered, 95) or 0.0,
        "max": ordered[-1] if ordered else 0.0,
    }


async def watch_loop(lags_s: list[float], every_s: float = 0.1) -> None:
    """How late the player's own event loop wakes: a busy player (its thousands of stories, the
    observer decoding every record) inflates the answer times and the lag it reports."""
    while True:
        asked = time.monotonic()
        await asyncio.sleep(every_s)
        lags_s.append(max(0.0, time.monotonic() - asked - every_s))


def player_timings(progress: Progress, loop_lags_s: list[float]) -> dict[str, Any]:
    """How far behind its plan the player ran and what made it late: per kind of step, how
    late it started and how long it took; the waits for its own HTTP slots, how late its own
    event loop woke, how long the system took to answer each kind of request."""

    def per_kind(durations: dict[str, list[float]]) -> dict[str, dict[str, float]]:
        return {kind: spread_of(values) for kind, values in sorted(durations.items())}

    return {
        "player_lag_s": spread_of(progress.lags_s),
        "player_lag_by_step_s": per_kind(progress.lags_by_step),
        "player_step_took_s": per_kind(progress.took_by_step),
        "player_slot_wait_s": spread_of(progress.slot_waits_s),
        "player_loop_late_s": spread_of(loop_lags_s),
        "player_requests_s": per_kind(progress.requests_s),
    }


async def open_work_items(target: Target) -> int | None:
    with contextlib.suppress(Exception):
        response = await target.clients["notifier"].get(
            "/work-items", params={"state": "open", "limit": 1}
        )
        if response.status_code == 200:
            return int(response.json()["total"])
    return None


async def summary_line(player: Player, observer: Observer, target: Target, t0: float) -> str:
    raised = observer.firing_by_rule()
    items = await open_work_items(target)
    progress = player.progress
    failed = sum(progress.failed.values())
    return (
        f"t+{time.monotonic() - t0:5.0f}s  steps {progress.steps_done}/{progress.steps_total}"
        f"  injected {progress.labels}/{len(player.plan.anomalies)}"
        + (f"  behind plan {progress.lags_s[-1]:.1f}s" if progress.lags_s else "")
        + (f"  failed steps {failed}" if failed else "")
        + "  | raised: "
        + (", ".join(f"{rule} {n}" for rule, n in sorted(raised.items())) or "nothing yet")
        + (f" | work items open {items}" if items is not None else "")
    )


async def run_scenario(
    options: ScenarioOptions,
    target: Target,
    labels_path: Path | None = None,
    check: bool = True,
    summary_every_s: float = 5.0,
    say: Callable[[str], None] = print,
    plan: Plan | None = None,
) -> Report | None:
    """Play the scenario; with `check`, wait for every window to pass and compare."""
    plan = plan or options.plan()
    scale = options.scale()
    say(
        f"scenario seed {plan.seed} tag {plan.tag}: {plan.orders} orders, {plan.steps} steps,"
        f" {len(plan.anomalies)} injected anomalies over {scale.real(plan.end_s):.0f}s"
        f" (speedup {scale.speedup:g})"
    )
    since = datetime.now(UTC) - timedelta(seconds=1)
    observer = Observer(target.kafka_bootstrap, target.topic_prefix, since)
    await observer.start()
    player = Player(
        plan,
        scale,
        target.clients,
        target.kafka_bootstrap,
        target.topic_prefix,
        tolerance_s=options.tolerance_s,
        carrier_secrets=target.carrier_secrets,
        concurrency=options.concurrency,
    )
    t0 = time.monotonic()

    async def summarise() -> None:
        while True:
            await asyncio.sleep(summary_every_s)
            say(await summary_line(player, observer, target, t0))

    summary = asyncio.create_task(summarise())
    loop_lags_s: list[float] = []
    loop_watch = asyncio.create_task(watch_loop(loop_lags_s))
    try:
        labels = await player.play()
        finished = datetime.now(UTC)
        header = {
            "seed": plan.seed,
            "tag": plan.tag,
            "speedup": scale.speedup,
            "started_at": (player.started_at or since).isoformat(),
            "finished_at": finished.isoformat(),
            "tolerance_s": options.tolerance_s,
            "orders": plan.orders,
            "steps": plan.steps,
            "injected": len(plan.anomalies),
            "unplayed": player.progress.unplayed,
            "failed_steps": dict(player.progress.failed),
            **player_timings(player.progress, loop_lags_s),
        }
        if labels_path:
            write_labels(labels_path, header, labels)
            say(f"{len(labels)} labels written to {labels_path}")
        for problem in player.progress.unplayed:
            say(f"not injected: {problem}")
        for error in player.progress.errors:
            say(f"step failed: {error}")
        if not check:
            return None
        last = max((label.window_end for label in labels), default=finished)
        wait = (last - datetime.now(UTC)).total_seconds()
        if wait > 0:
            say(f"waiting {wait:.0f}s for the last detection window to close")
            await asyncio.sleep(wait)
        observations = await observer.drain()
        say(await summary_line(player, observer, target, t0))
    finally:
        summary.cancel()
        loop_watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await summary
        with contextlib.suppress(asyncio.CancelledError):
            await loop_watch
        await observer.stop()
    report = compare(labels, observations)
    for line in report.lines():
        say(line)
    return report


async def check_labels(
    labels_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str = "",
    say: Callable[[str], None] = print,
) -> Report:
    """`scenario check`: the labels of a past run against what the topics hold now."""
    header, labels = read_labels(labels_path)
    since = datetime.fromisoformat(header["started_at"]) - timedelta(seconds=1)
    until = max((label.window_end for label in labels), default=datetime.now(UTC))
    observations = [
        o
        for o in await read_observations(kafka_bootstrap, topic_prefix, since)
        if o.detected_at <= until
    ]
    report = compare(labels, observations)
    for line in report.lines():
        say(line)
    return report
