#!/usr/bin/env python
"""Detection quality at scale: thousands of orders, every anomaly kind injected many times.

    .venv/bin/python bench/detection_quality.py [--orders 2000] [--per-kind 20]
        [--speedup 2880] [--rate 50] [--seed 1 | --seeds 5 | --seeds 1,11,23] [--tolerance 10]
        [--json results.json]
    .venv/bin/python bench/detection_quality.py --summarize results.json

For each seed, in sequence: starts the whole system as `orderguard up` does (a fresh temp dir:
embedded broker and PostgreSQL, each service its own process) with the scenario's detectors
file scaled to `--speedup` (and the settings it needs), plays the labelled shop against it
through the services' HTTP APIs, payments.events and carrier scans, waits for every detection
window to close and compares. Prints per seed, then per kind and overall over all seeds:
recall, duplicates, early raises (before the due time), late ones, false alarms, and the
detection delay after the due time (p50/p95/max, seconds), with the load average beside them.
`--seeds N` runs seeds `--seed` .. `--seed`+N-1; a comma-separated list runs those. Exit
status 1 unless every anomaly was raised exactly once in time and nothing else was.
`--json` is rewritten after each seed; `--summarize` prints the figures of such a file (the
seeds that finished when a run was stopped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from orderguard.cli.supervisor import read_status
from orderguard.scenario.player import Clients
from orderguard.scenario.quality import Figures, Label, Observation, Outcome, Report
from orderguard.scenario.runner import ScenarioOptions, Target, read_labels, run_scenario
from orderguard.scenario.scale import SYSTEM_ENV


def start_system(data_dir: Path, options: ScenarioOptions, secret: str) -> subprocess.Popen[bytes]:
    detectors = data_dir / "detectors.yaml"
    data_dir.mkdir(parents=True, exist_ok=True)
    detectors.write_text(options.scale().detectors_yaml())
    env = {
        **os.environ,
        **SYSTEM_ENV,
        "ORDERGUARD_DETECTORS_FILE": str(detectors),
        "ORDERGUARD_LOGISTICS__CARRIER_SECRETS": json.dumps({"sf-express": secret}),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "orderguard.cli", "up", "--data-dir", str(data_dir)],
        env=env,
        stdout=open(data_dir / "up.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_ready(data_dir: Path, up: subprocess.Popen[bytes], timeout_s: float = 180) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if up.poll() is not None:
            raise SystemExit(f"`orderguard up` exited {up.returncode}; see {data_dir / 'up.log'}")
        status = read_status(data_dir)
        if status and all(s["ready"] for s in status["services"].values()):
            return status
        time.sleep(0.5)
    raise SystemExit(f"not ready after {timeout_s}s; see {data_dir / 'up.log'}")


def load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


async def play(
    args: argparse.Namespace, seed: int, status: dict, secret: str, data_dir: Path
) -> Report:
    options = ScenarioOptions(
        seed=seed,
        speedup=args.speedup,
        rate=args.rate,
        orders=args.orders,
        injections_per_kind=args.per_kind,
        tolerance_s=args.tolerance,
        tag=f"bench{seed}-{int(time.time()) % 100000}",
    )
    target = Target(
        Clients.connect({n: s["url"] for n, s in status["services"].items()}, status["api_key"]),
        status["broker"]["bootstrap"],
        "",
        {"sf-express": secret},
    )
    started = time.monotonic()
    try:
        report = await run_scenario(
            options,
            target,
            data_dir / "labels.jsonl",
            summary_every_s=15,
            say=lambda line: print(f"bench {seed} | {line}", flush=True),
        )
    finally:
        await target.clients.aclose()
    assert report is not None
    p50, p95 = report.delay_percentile(50), report.delay_percentile(95)
    print(
        f"\nRESULT seed={seed} clean_orders={options.orders} injected={report.injected}"
        f" recall={report.recall:.4f} false_alarms={len(report.false_alarms)}"
        f" delay_p50_s={p50:.2f} delay_p95_s={p95:.2f} delay_max_s={report.delays[-1]:.2f}"
        f" wall_s={time.monotonic() - started:.0f} {load()}",
        flush=True,
    )
    header, _ = read_labels(data_dir / "labels.jsonl")
    lag = header.get("player_lag_s", {})
    print(
        "  player behind its plan (s):"
        + "".join(f" {name} {value:.2f}" for name, value in lag.items())
        + f"; planned {header.get('injected')} anomalies, not injected"
        f" {len(header.get('unplayed', []))}, failed steps {sum(header.get('failed_steps', {}).values())}",
        flush=True,
    )
    slowest = sorted(
        (o for o in report.outcomes if o.delay_s is not None), key=lambda o: -(o.delay_s or 0)
    )[:5]
    for outcome in slowest:
        print(
            f"  slowest: {outcome.delay_s:6.2f}s {outcome.label.kind} {outcome.label.id}"
            f" {outcome.label.match}",
            flush=True,
        )
    return report


def run_seed(args: argparse.Namespace, seed: int) -> Report:
    """One seed on a system of its own, stopped afterwards."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"orderguard-quality-{seed}-"))
    secret = os.urandom(12).hex()
    up = start_system(data_dir, ScenarioOptions(speedup=args.speedup), secret)
    try:
        status = wait_ready(data_dir, up)
        print(f"bench {seed} | system up in {data_dir}; {load()}", flush=True)
        return asyncio.run(play(args, seed, status, secret, data_dir))
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                up.kill()
        if args.keep:
            print(f"bench {seed} | logs kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def seeds_of(args: argparse.Namespace) -> list[int]:
    if args.seeds is None:
        return [args.seed]
    if "," in args.seeds:
        return [int(seed) for seed in args.seeds.split(",")]
    return [args.seed + n for n in range(int(args.seeds))]


def outcomes_json(seed: int, report: Report) -> dict:
    return {
        "seed": seed,
        "outcomes": [
            {**o.label.to_json(), "verdict": o.verdict, "raised": o.raised, "delay_s": o.delay_s}
            for o in report.outcomes
        ],
        "false_alarms": [
            {"rule": a.rule, "labels": a.labels, "detected_at": a.detected_at.isoformat()}
            for a in report.false_alarms
        ],
    }


def reports_of_json(path: Path) -> list[tuple[int, Report]]:
    """The seeds' reports as `--json` wrote them (after each seed)."""
    found = []
    for run in json.loads(path.read_text()):
        outcomes = [
            Outcome(Label.from_json(o), o["verdict"], o["raised"], o["delay_s"])
            for o in run["outcomes"]
        ]
        alarms = [
            Observation(a["rule"], "", a["labels"], datetime.fromisoformat(a["detected_at"]))
            for a in run["false_alarms"]
        ]
        found.append((run["seed"], Report(outcomes, alarms, 0.0)))
    return found


def print_figures(reports: list[tuple[int, Report]]) -> Figures:
    print(f"\nbench | per seed ({load()})\n{Figures.HEADER}")
    for seed, report in reports:
        print(Figures.row(f"seed {seed}", Figures.of([report]).overall))
    figures = Figures.of([report for _, report in reports])
    print(f"\nbench | {len(reports)} seeds {[seed for seed, _ in reports]}, per kind and overall:")
    for line in figures.lines():
        print(line)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=2000, help="clean orders")
    parser.add_argument("--per-kind", type=int, default=20, help="injections of each kind")
    parser.add_argument("--speedup", type=float, default=2880.0)
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", help="how many seeds from --seed, or a list: 1,11,23")
    parser.add_argument("--tolerance", type=float, default=10.0)
    parser.add_argument("--json", help="write every seed's outcomes here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs (logs, labels)")
    parser.add_argument(
        "--summarize", help="only print the figures of a --json file written before"
    )
    args = parser.parse_args()
    if args.summarize:
        return 0 if print_figures(reports_of_json(Path(args.summarize))).ok else 1
    seeds = seeds_of(args)
    print(f"bench | seeds {seeds}; {load()}", flush=True)
    reports: list[tuple[int, Report]] = []
    for seed in seeds:
        reports.append((seed, run_seed(args, seed)))
        if args.json:
            Path(args.json).write_text(
                json.dumps([outcomes_json(s, r) for s, r in reports], indent=1)
            )
    return 0 if print_figures(reports).ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
