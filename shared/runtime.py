"""Runs one service: migrations, pool, outbox relay, engine consumers and the HTTP server.

`serve` runs the API (with the relay that publishes what the API writes); `worker` runs the
engine consumers and detectors (with the relay too); embedded mode runs both in one process.
Every role serves /healthz, /readyz and /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import asyncpg
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import APIRouter, FastAPI

from orderguard.shared import metrics, telemetry
from orderguard.shared.db import apply_migrations, create_pool, wait_for_database
from orderguard.shared.detection.config import ConfigurableRule
from orderguard.shared.detection.consumer import detector_consumers
from orderguard.shared.engine import BatchConsumer, Engine
from orderguard.shared.engine.idle import IdleFetching, Wakeups
from orderguard.shared.engine.takeover import former_groups
from orderguard.shared.http import create_app
from orderguard.shared.kafka import create_topics, make_consumer, make_producer, wait_for_broker
from orderguard.shared.logging import configure_logging, get_logger
from orderguard.shared.outbox import OutboxRelay
from orderguard.shared.retention import engine_retentions, retention_job
from orderguard.shared.scheduler import run_job
from orderguard.shared.settings import SCHEMAS, ServiceName, Settings
from orderguard.shared.topics import Topics
from orderguard.shared.wiring import Workers, worker_group

log = get_logger(__name__)

Role = Literal["api", "workers"]
T = TypeVar("T")
# A consumer loop that has not polled for this long is stuck; a partition with records waiting
# whose applied offset has not moved for this long is stalled. Either makes the process unready.
STALLED_AFTER_S = 60.0


@dataclass(frozen=True)
class ServiceDefinition:
    """What a service contributes; `bootstrap.py` of each service builds one."""

    name: ServiceName
    migrations: Path | None
    routers: Callable[[Runtime], Sequence[APIRouter]] = lambda runtime: ()
    # The worker's table: engine consumers of use cases, detector rules, scheduled jobs.
    workers: Callable[[Runtime], Workers] = lambda runtime: Workers()


@dataclass
class Runtime:
    definition: ServiceDefinition
    settings: Settings
    roles: frozenset[Role]
    # Every service's configurable rules (the composition root's list): the detectors file is
    # shared, so each process checks all of it.
    rule_catalogue: Sequence[ConfigurableRule]
    pool: asyncpg.Pool = field(init=False)
    producer: AIOKafkaProducer = field(init=False)
    relay: OutboxRelay = field(init=False)
    engines: list[Engine] = field(default_factory=list)
    wakeups: Wakeups | None = None
    failed: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _loaded: dict[str, Any] = field(default_factory=dict)

    def once(self, name: str, load: Callable[[], T]) -> T:
        """Load a piece of configuration once per process, shared by the API and the workers
        (so both act on the same routing tree or thresholds)."""
        if name not in self._loaded:
            self._loaded[name] = load()
        return self._loaded[name]

    @property
    def schema(self) -> str:
        return SCHEMAS[self.definition.name]

    @property
    def topics(self) -> Topics:
        return Topics(self.settings.topic_prefix)

    @property
    def worker_group(self) -> str:
        """The worker's one consumer group: where its engine keeps offsets and applied event
        ids, and what its dead-letter topics are named after."""
        return worker_group(self.definition.name)

    def engine_consumers(self, workers: Workers | None = None) -> list[BatchConsumer]:
        """What the worker's engine runs, in this order: the table's use-case consumers, then a
        detector consumer per rule the detectors file enables."""
        workers = self.definition.workers(self) if workers is None else workers
        return [*workers.consumers, *detector_consumers(self, workers.detectors)]

    async def start(self) -> None:
        # Configuration errors (an invalid routing file, a bad threshold) stop start-up before any side effect.
        workers = self.definition.workers(self) if "workers" in self.roles else Workers()
        consumers = self.engine_consumers(workers)
        # What the worker's engine reads: the union of its handlers' topics.
        topics = list(dict.fromkeys(topic for c in consumers for topic in c.topics))
        jobs = (
            [
                *workers.jobs,
                *(retention_job(r, self.settings) for r in engine_retentions(self.settings)),
            ]
            if "workers" in self.roles
            else []
        )
        await wait_for_database(self.settings.database_url)
        applied = await apply_migrations(
            self.settings.database_url, self.schema, self.definition.migrations
        )
        if applied:
            log.info("migrations applied", schema=self.schema, migrations=applied)
        self.pool = await create_pool(self.settings.database_url, self.schema)
        await wait_for_broker(self.settings)
        # Dead letters go out through the outbox; their topics must exist where auto-create is off.
        await create_topics(
            self.settings,
            [Topics.dead_letter(topic, self.worker_group) for topic in topics],
        )
        self.producer = make_producer(self.settings)
        await self.producer.start()
        self.relay = OutboxRelay(
            self.pool,
            self.producer,
            self.schema,
            batch_max=self.settings.outbox_batch_max,
            poll_interval_s=self.settings.outbox_poll_interval_s,
            linger_s=self.settings.outbox_relay_linger_ms / 1000,
        )
        self._spawn(self.relay.run(self._stop), "outbox-relay")
        if "workers" in self.roles:
            if consumers and self.settings.consumer_idle_after_s > 0:
                self.wakeups = Wakeups(self.settings.consumer_idle_probe_s)
                await self.wakeups.start(self.settings.database_url)
            if consumers:
                kafka = make_consumer(self.settings, self.worker_group)
                engine = Engine(
                    self.worker_group,
                    consumers,
                    kafka,
                    self.pool,
                    self.schema,
                    batch_max=self.settings.consumer_batch_max,
                    max_retries=self.settings.consumer_max_retries,
                    retry_backoff_s=self.settings.consumer_retry_backoff_s,
                    idle=self._idle_fetching(
                        kafka, topics, frozenset().union(*(c.event_types for c in consumers))
                    ),
                    former_groups=former_groups(self.settings, self.pool),
                )
                self.engines.append(engine)
                self._spawn(engine.run(self._stop), f"engine:{self.worker_group}")
            for job in jobs:
                self._spawn(
                    run_job(job, self.pool, self.schema, self._stop, self.settings.job_interval_s),
                    f"job:{job.name}",
                )

    def _idle_fetching(
        self, kafka: AIOKafkaConsumer, topics: Sequence[str], event_types: frozenset[str]
    ) -> IdleFetching | None:
        if self.wakeups is None:
            return None
        return IdleFetching(
            kafka,
            topics,
            self.wakeups,
            event_types,
            idle_after_s=self.settings.consumer_idle_after_s,
            flowing_fetch_every_s=self.settings.consumer_flowing_fetch_every_ms / 1000,
            fetch_wait_ms=self.settings.consumer_fetch_max_wait_ms,
            linger_s=self.settings.consumer_linger_ms / 1000,
        )

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._stop.is_set():
            return
        exc = task.exception()
        # A dead relay or consumer must not leave a process that looks alive: stop and let the
        # supervisor (embedded `up`, compose, Kubernetes) restart it.
        log.error("background task died; stopping", task=task.get_name(), error=repr(exc))
        self.failed = True
        self._stop.set()

    async def readiness(self) -> dict[str, bool]:
        checks = {"database": False, "broker": False}
        try:
            async with asyncio.timeout(2):
                await self.pool.fetchval("SELECT 1")
            checks["database"] = True
        except Exception:
            pass
        try:
            async with asyncio.timeout(2):
                # A metadata round trip on the producer's own connection: cheap, and what we publish with.
                await self.producer.client.fetch_all_metadata()
            checks["broker"] = True
        except Exception:
            pass
        if self.engines:
            now = time.monotonic()
            checks["consumers"] = all(
                engine.started.is_set()
                and now - engine.last_progress < STALLED_AFTER_S
                and not engine.stalled_partitions(STALLED_AFTER_S)
                and not engine.waiting_for_former_groups
                for engine in self.engines
            )
        return checks

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    def request_stop(self) -> None:
        self._stop.set()

    async def stop(self) -> None:
        self._stop.set()
        # Engines finish their batch and leave their group; the relay drains what it holds.
        _, pending = await asyncio.wait(self._tasks, timeout=20) if self._tasks else (set(), set())
        for task in pending:
            task.cancel()
        with contextlib.suppress(Exception):
            await self.producer.stop()
        if self.wakeups is not None:
            await self.wakeups.close()
        with contextlib.suppress(Exception):
            await self.pool.close()


def build_app(runtime: Runtime) -> FastAPI:
    """The HTTP app of a started runtime: ops endpoints always, API routes in the api role."""
    routers = runtime.definition.routers(runtime) if "api" in runtime.roles else ()
    app = create_app(runtime.definition.name, runtime.settings, runtime.readiness, routers)
    app.state.runtime = runtime
    return app


def tune_garbage_collector() -> None:
    """Keep the cyclic collector off the engine's hot path.

    A batch of 2,000 events allocates ~30k short-lived containers that reference counting
    frees; with the default threshold (700) the collector took ~30% of a detector's time
    (bench/pipeline.py). What start-up loaded lives as long as the process, so it is frozen
    out of the scans, and young collections run far less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The runtime owns SIGINT/SIGTERM so it can stop consumers after the server.
        yield


def http_server(app: FastAPI, settings: Settings) -> uvicorn.Server:
    """The process's HTTP server; the caller owns the signals and the stopping."""
    return _Server(
        uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            lifespan="off",
            access_log=False,
        )
    )


async def run_service(
    definition: ServiceDefinition,
    roles: frozenset[Role],
    settings: Settings,
    rule_catalogue: Sequence[ConfigurableRule],
) -> int:
    configure_logging(settings.log_level, settings.log_format, service=definition.name)
    role_label = "+".join(sorted(roles))
    metrics.BUILD_INFO.info({"version": "0.1.0", "service": definition.name, "role": role_label})
    telemetry.configure(settings, definition.name, role_label)
    runtime = Runtime(definition, settings, roles, rule_catalogue)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, runtime.request_stop)
    await runtime.start()
    tune_garbage_collector()
    server = http_server(build_app(runtime), settings)
    serving = asyncio.create_task(server.serve())
    log.info("service started", service=definition.name, roles=role_label, port=settings.http_port)
    await asyncio.wait(
        {serving, asyncio.create_task(runtime.wait_stopped())}, return_when=asyncio.FIRST_COMPLETED
    )
    server.should_exit = True
    await serving
    await runtime.stop()
    telemetry.shutdown()
    log.info("service stopped", service=definition.name)
    return 1 if runtime.failed else 0
