#!/usr/bin/env python
"""`make soak`: is an embedded `orderguard up` as quick after an hour of orders as after a minute?

    .venv/bin/python bench/soak.py [--rate 100] [--minutes 30] [--window 60] [--json out.jsonl]

Starts `orderguard up` as `make bench` does (embedded defaults, its own data dir, free ports),
then places orders at a constant offered rate, open loop (bench/load.py), a customer per order
on SKUs stocked for all of them, window after window. Per window it prints the orders served
of those offered, p50/p99, the CPU each kind of process spent per order placed (broker,
PostgreSQL, each service), the broker's RSS, the consumers' lag at the window's end (the sum of
their lag gauges, records) and the largest read every 5 s during it, and the load average; and
beside them the ratio of the window's CPU per order and p99 to the first window's, since a cost
that grows with uptime shows in a ratio however noisy the machine is. At the end it waits for every consumer's lag to
be 0 and says how long that took.

Why: the embedded broker (Tansu, memory storage) keeps every record it was sent and answers a
fetch that finds records by listing every batch of the partition, so its cost per request grows
with its log (README, "Performance"). This measures what that means for a user who leaves
`make run` running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from load import open_loop, run
from system import CpuUse, UpSystem, load_avg, post_orders, seed_stock, settle, total_lag

KINDS = ("broker", "postgres", "order", "inventory", "logistics", "aftersales", "notifier")


def ratio(value: float, first: float) -> str:
    return f"{value / first:.2f}x" if first > 0 else "-"


class LagWatch:
    """The largest sum of the consumers' lag gauges seen, read every `every_s` while it runs:
    a window's end alone can miss records that waited in the middle of it."""

    def __init__(self, up: UpSystem, every_s: float = 5.0) -> None:
        self._up = up
        self._every_s = every_s
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.largest = 0.0

    async def _watch(self) -> None:
        while not self._stop.is_set():
            self.largest = max(self.largest, await total_lag(self._up))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._every_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> float:
        self._stop.set()
        if self._task is not None:
            await self._task
        return self.largest


async def soak(
    rate: float, minutes: float, window_s: float, keep: bool
) -> tuple[list[dict[str, Any]], bool]:
    """The rows of every window, and whether every consumer's lag came back to 0."""
    root = Path(tempfile.mkdtemp(prefix="orderguard-soak-"))
    up = UpSystem(root)
    rows: list[dict[str, Any]] = []
    try:
        up.start()
        print(f"orderguard up ready in {up.ready_s:.1f} s (log {up.log}); load {load_avg()}")
        tag = uuid.uuid4().hex[:6]
        skus = [f"SOAK-{tag}-{k}" for k in range(50)]
        await seed_stock(up, skus, 1_000_000_000)
        headers = {"X-API-Key": up.api_key}
        port = up.port("order")
        broker = psutil.Process(int(up.status["broker"]["pid"]))
        print(
            f"{'min':>5} {'served':>9} {'p50':>5} {'p99':>6} {'CPU/order ms':>12}"
            + "".join(f" {kind[:8]:>8}" for kind in KINDS)
            + f" {'broker MB':>9} {'lag':>6} {'lag max':>7} {'CPU x1st':>8} {'broker x1st':>11} {'p99 x1st':>8}  load"
        )
        started = time.monotonic()
        placed = 0
        first: dict[str, Any] | None = None
        for window in range(max(1, round(minutes * 60 / window_s))):
            cpu = CpuUse(up, up.processes)
            await cpu.start()
            lag = LagWatch(up)
            lag.start()
            result = await open_loop(
                port,
                rate,
                window_s,
                post_orders(port, headers, f"soak{tag}w{window}", skus),
                ok_status=201,
            )
            await cpu.stop()
            lag_max = await lag.stop()
            placed += result.ok
            per_order = {
                kind: 1000 * seconds / max(result.ok, 1) for kind, seconds in cpu.seconds.items()
            }
            row = {
                "minute": (time.monotonic() - started) / 60,
                "orders_placed": placed,
                "offered": int(rate * window_s),
                "served": result.ok,
                "p50_ms": result.p(0.5),
                "p99_ms": result.p(0.99),
                "cpu_ms_per_order": sum(per_order.values()),
                "cpu_ms_per_order_by_kind": per_order,
                "broker_rss_mb": broker.memory_info().rss / 2**20,
                # The consumers' lag gauges summed at the window's end: the door may keep up
                # while the work behind it falls behind.
                "lag_records": await total_lag(up),
                "lag_max_records": lag_max,
                "load": load_avg(),
            }
            rows.append(row)
            first = first or row
            print(
                f"{row['minute']:5.1f} {result.ok:>4}/{row['offered']:<4} {row['p50_ms']:5.0f}"
                f" {row['p99_ms']:6.0f} {row['cpu_ms_per_order']:12.2f}"
                + "".join(f" {per_order.get(kind, 0.0):8.2f}" for kind in KINDS)
                + f" {row['broker_rss_mb']:9.0f} {row['lag_records']:6.0f} {lag_max:7.0f}"
                f" {ratio(row['cpu_ms_per_order'], first['cpu_ms_per_order']):>8}"
                f" {ratio(per_order.get('broker', 0.0), first['cpu_ms_per_order_by_kind'].get('broker', 0.0)):>11}"
                f" {ratio(row['p99_ms'], first['p99_ms']):>8}  {row['load']}",
                flush=True,
            )
        settled = await settle(up)
        print(
            f"{placed:,} orders placed; every consumer's lag 0 "
            + (
                f"{settled:.1f} s after the load stopped"
                if settled is not None
                else "NOT within 120 s"
            )
        )
        return rows, settled is not None
    finally:
        up.stop()
        if keep:
            print(f"kept {root} (logs in {up.data_dir / 'logs'})")
        else:
            shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="orders offered per second")
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to place orders")
    parser.add_argument("--window", type=float, default=60.0, help="seconds per printed row")
    parser.add_argument("--json", type=Path, default=None, help="write the rows as JSON lines")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    rows, settled = run(lambda: soak(args.rate, args.minutes, args.window, args.keep))  # type: ignore[misc]
    if args.json is not None:
        args.json.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return 0 if settled else 1


if __name__ == "__main__":
    sys.exit(main())
