#!/usr/bin/env python
"""Detection quality at scale: thousands of orders, every anomaly kind injected many times.

    .venv/bin/python bench/detection_quality.py [--orders 2000] [--per-kind 20]
        [--speedup 2880] [--rate 50] [--seed 1] [--tolerance 10]

Starts the whole system as `orderguard up` does (its own temp dir: embedded broker and
PostgreSQL, each service its own process) with the scenario's detectors file scaled to
`--speedup` (and the settings it needs), plays the labelled shop against it through the
services' HTTP APIs, payments.events and carrier scans, waits for every detection window to
close and prints recall, false alarms and detection delay percentiles (p50/p95/max, seconds
after the moment each anomaly was due). Exit status 1 when recall < 1 or any false alarm.
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
from pathlib import Path

from orderguard.cli.supervisor import read_status
from orderguard.scenario.player import Clients
from orderguard.scenario.runner import ScenarioOptions, Target, run_scenario
from orderguard.scenario.scale import SYSTEM_ENV


def start_system(data_dir: Path, options: ScenarioOptions, secret: str) -> subprocess.Popen[bytes]:
    detectors = data_dir / "detectors.yaml"
    data_dir.mkdir(parents=True, exist_ok=True)
    detectors.write_text(options.scale().detectors_yaml())
    env = {
        **os.environ,
        **SYSTEM_ENV,
        "ORDERGUARD_DETECTORS_FILE": str(detectors),
        "ORDERGUARD_CARRIER_SECRETS": json.dumps({"sf-express": secret}),
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


async def bench(args: argparse.Namespace, status: dict, secret: str) -> int:
    options = ScenarioOptions(
        seed=args.seed,
        speedup=args.speedup,
        rate=args.rate,
        orders=args.orders,
        injections_per_kind=args.per_kind,
        tolerance_s=args.tolerance,
        tag=f"bench{args.seed}-{int(time.time()) % 100000}",
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
            Path(args.labels) if args.labels else None,
            summary_every_s=15,
            say=lambda line: print(f"bench | {line}", flush=True),
        )
    finally:
        await target.clients.aclose()
    assert report is not None
    p50, p95 = report.delay_percentile(50), report.delay_percentile(95)
    print(
        f"\nRESULT clean_orders={options.orders} injected={report.injected}"
        f" recall={report.recall:.4f} false_alarms={len(report.false_alarms)}"
        f" delay_p50_s={p50:.2f} delay_p95_s={p95:.2f} delay_max_s={report.delays[-1]:.2f}"
        f" wall_s={time.monotonic() - started:.0f}",
        flush=True,
    )
    return 0 if report.ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=2000, help="clean orders")
    parser.add_argument("--per-kind", type=int, default=20, help="injections of each kind")
    parser.add_argument("--speedup", type=float, default=2880.0)
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tolerance", type=float, default=10.0)
    parser.add_argument("--labels", help="also write the labels here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="orderguard-quality-"))
    secret = os.urandom(12).hex()
    up = start_system(data_dir, ScenarioOptions(speedup=args.speedup), secret)
    try:
        status = wait_ready(data_dir, up)
        print(f"bench | system up in {data_dir}", flush=True)
        return asyncio.run(bench(args, status, secret))
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                up.kill()
        if args.keep:
            print(f"bench | logs kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
