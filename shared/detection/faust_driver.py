"""faust-streaming as an alternative driver of the same pure detector rules.

The default is the engine (`shared/engine/consumer.py`): batched, one PostgreSQL transaction per batch,
exactly-once effects, ~10x faust's throughput (README). This driver is for teams that run
faust agents. Same rules, same decoding and dead letters, same event-time clocks, same
fingerprints:

- one faust app per service worker, one agent per rule over the rule's topics, taking events
  in small batches (`take_events`);
- each rule's state per key lives in a faust Table (memory store, changelog-backed, rebuilt
  from the changelog after a rebalance). The changelog partition is always the source
  partition, written explicitly, so a deadline's tick outside a stream writes to the right one;
- faust has no per-key timers and its windowed tables are never used: a deadline index (a heap
  of due, partition, key) over the owned partitions is swept by a faust timer on the engine's
  `PartitionClocks`, and rebuilt from the table when the assignment changes;
- anomalies go straight to the anomalies topic, at least once (faust commits offsets after
  processing; a crash may send an anomaly again, and its fingerprint collapses it downstream).
"""

from __future__ import annotations

import asyncio
import heapq
import signal
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from faust.tables.manager import TableManager
from faust.types import StreamT

from orderguard.shared import metrics
from orderguard.shared.detection.config import ConfigurableRule
from orderguard.shared.detection.consumer import DetectorConsumer
from orderguard.shared.detection.deadlines import PartitionClocks, as_utc
from orderguard.shared.detection.rule import Rule, State, TimedRule, anomaly_envelope
from orderguard.shared.engine.consumer import DeadLetter, dead_letter_message, decode_record
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.http import create_app
from orderguard.shared.logging import configure_logging, get_logger
from orderguard.shared.runtime import Runtime, ServiceDefinition, http_server
from orderguard.shared.settings import Settings

log = get_logger(__name__)

TAKE_MAX = 500
TAKE_WITHIN_S = 0.05
SWEEP_EVERY_S = 0.5


def build_faust_app(settings: Settings, service: str) -> faust.App:
    """A faust app on our broker, with the consumer tuned as measured (docs: embedded.md)."""
    app = faust.App(
        f"{settings.topic_prefix}{service}.faust",
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.consumer_session_timeout_ms / 1000,
        broker_heartbeat_interval=settings.consumer_heartbeat_interval_ms / 1000,
        web_enabled=False,  # our ops app serves /healthz, /readyz and /metrics
        producer_linger_ms=settings.outbox_linger_ms,
    )
    # faust hard-codes a 1.5 s fetch wait; on Tansu latency follows it (embedded.md).
    app.conf.consumer_fetch_max_wait_ms = settings.consumer_fetch_max_wait_ms
    return app


class FaustDetector:
    """One pure rule run as a faust agent; what `DetectorConsumer` is to the engine."""

    def __init__(self, app: faust.App, consumer: DetectorConsumer) -> None:
        self.app = app
        self.rule: Rule = consumer.rule
        self.group = f"{consumer.name}.faust"
        self.clocks: PartitionClocks = consumer.clocks
        self._timed = self.rule if isinstance(self.rule, TimedRule) else None
        self._wanted = self.rule.event_types
        self._source_topics = list(consumer.topics)
        self._source = f"{consumer._source}/faust"
        self.table = app.Table(f"{self.rule.name}-state", default=None)
        self._anomalies = app.topic(consumer._anomalies_topic, value_serializer="raw")
        topic = app.topic(*self._source_topics, key_serializer="raw", value_serializer="raw")
        self._heaps: dict[TopicPartition, list[tuple[datetime, str]]] = {}
        self._due: dict[
            str, datetime
        ] = {}  # key -> its current deadline (older heap rows are stale)
        self._indexed: set[TopicPartition] = set()
        app.agent(topic, name=f"{self.rule.name}-agent")(self._process)
        if self._timed is not None:
            app.timer(SWEEP_EVERY_S, name=f"{self.rule.name}-deadlines")(self._sweep)

    # -- events ------------------------------------------------------------------------------

    async def _process(self, stream: StreamT[Any]) -> None:
        assert isinstance(stream, faust.Stream)  # agents get faust's Stream; take_events is its
        async for batch in stream.take_events(TAKE_MAX, within=TAKE_WITHIN_S):
            for event in batch:
                await self._apply(event)

    async def _apply(self, faust_event: Any) -> None:
        message = faust_event.message
        tp = TopicPartition(message.topic, message.partition)
        self.clocks.polled([tp])
        decoded = decode_record(_record_of(message), self._wanted)
        if decoded is None:
            metrics.EVENTS_CONSUMED.labels(message.topic, self.group, "skipped").inc()
            return
        if isinstance(decoded, DeadLetter):
            await self._dead_letter(decoded)
            return
        metrics.EVENTS_CONSUMED.labels(message.topic, self.group, "applied").inc()
        late = self.clocks.count_late(tp, [decoded.envelope.time])
        key = self.rule.key(decoded)
        if key is not None:
            state = self._state(key)
            new_state, anomalies = self.rule.apply(state, decoded, datetime.now(UTC))
            if new_state is not state:
                self._store(tp, key, new_state)
            await self._publish(anomalies, decoded.envelope)
        self.clocks.advance(tp, [decoded.envelope.time])
        if late:
            metrics.LATE_EVENTS.labels(self.group).inc(late)

    # -- deadlines -----------------------------------------------------------------------------

    async def _sweep(self) -> None:
        assert self._timed is not None
        owned = {
            TopicPartition(tp.topic, tp.partition)
            for tp in self.app.assignor.assigned_actives()
            if tp.topic in self._source_topics
        }
        if not _recovered(self.app):
            return  # the table is still being rebuilt from its changelog
        if owned != self._indexed:
            self._rebuild_index(owned)
        for tp in owned:
            clock = self.clocks.now(tp)
            heap = self._heaps.get(tp, [])
            while clock is not None and heap and heap[0][0] <= clock:
                due_at, key = heapq.heappop(heap)
                if self._due.get(key) != due_at:
                    continue  # superseded by a later write of the key
                del self._due[key]
                new_state, anomalies = self._timed.tick(self._state(key), key, clock)
                self._store(tp, key, new_state)
                await self._publish(anomalies, None)

    def _rebuild_index(self, owned: set[TopicPartition]) -> None:
        self.clocks.forget(self._indexed - owned)
        self._heaps.clear()
        self._due.clear()
        for key, stored in self.table.data.items():
            tp = TopicPartition(stored["topic"], stored["partition"]) if stored else None
            if tp in owned:
                self._index(tp, key, stored["state"])
        self._indexed = owned

    def _index(self, tp: TopicPartition, key: str, state: State) -> None:
        assert self._timed is not None
        due = self._timed.deadline(state)
        if due is None:
            self._due.pop(key, None)
            return
        due = as_utc(due)
        self._due[key] = due
        heapq.heappush(self._heaps.setdefault(tp, []), (due, key))

    # -- state and output ------------------------------------------------------------------------

    def _state(self, key: str) -> State:
        stored = self.table.data.get(key)
        return stored["state"] if stored is not None else self.rule.initial_state()

    def _store(self, tp: TopicPartition, key: str, state: State) -> None:
        stored = {"topic": tp.topic, "partition": tp.partition, "state": state}
        self.table.data[key] = stored
        self.table.send_changelog(tp.partition, key, stored)
        if self._timed is not None:
            self._index(tp, key, state)

    async def _publish(self, anomalies: list[AnomalyDetected], cause: Envelope | None) -> None:
        for anomaly in anomalies:
            envelope = anomaly_envelope(anomaly, self._source, cause)
            await self._anomalies.send(
                key=envelope.subject.encode(),
                value=envelope.to_json(),
                headers=list(envelope.kafka_headers()),
            )
            metrics.ANOMALIES_DETECTED.labels(self.rule.name, anomaly.severity).inc()
            metrics.DETECTION_LATENCY.labels(self.rule.name).observe(
                max(0.0, (anomaly.detected_at - anomaly.event_time).total_seconds())
            )

    async def _dead_letter(self, letter: DeadLetter) -> None:
        message = dead_letter_message(letter, self.group)
        await self.app.producer.send_and_wait(
            message.topic,
            message.key,
            message.value,
            partition=None,
            timestamp=None,
            headers=[(name, value.encode()) for name, value in message.headers],
        )


def _record_of(message: Any) -> ConsumerRecord:
    """A faust message as the aiokafka record the shared decoder reads."""
    headers = message.headers.items() if isinstance(message.headers, dict) else message.headers
    return ConsumerRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp=int(message.timestamp * 1000),
        timestamp_type=0,
        key=message.key,
        value=message.value,
        checksum=None,
        serialized_key_size=message.serialized_key_size,
        serialized_value_size=message.serialized_value_size,
        headers=list(headers or ()),
    )


def faust_detectors(app: faust.App, consumers: Sequence[object]) -> list[FaustDetector]:
    """A faust agent for every detector among a service's engine consumers."""
    detectors = []
    for consumer in consumers:
        if not isinstance(consumer, DetectorConsumer):
            continue
        if consumer.keys_span_partitions:
            # Its keys arrive on several partitions: a partition-local faust Table cannot hold
            # them; the engine's workers run it (with its per-key locks).
            log.warning(
                "rule stays on the engine: its keys span partitions", rule=consumer.rule.name
            )
            continue
        detectors.append(FaustDetector(app, consumer))
    return detectors


async def run_faust_worker(app: faust.App, stop: asyncio.Event) -> None:
    """Run the app's agents and timers in this event loop until `stop`.

    The app is started as the service it is, not through `faust.Worker`, whose signal handlers
    would stop the loop under us; this process owns its signals and its ops HTTP server."""
    await app.start()
    try:
        await stop.wait()
    finally:
        await app.stop()


async def run_faust_service(
    definition: ServiceDefinition, settings: Settings, rule_catalogue: Sequence[ConfigurableRule]
) -> int:
    """`orderguard worker <service> --engine faust`: the service's detectors as faust agents,
    with /healthz, /readyz and /metrics. Its other consumers stay on the engine's workers."""
    configure_logging(settings.log_level, settings.log_format, service=definition.name)
    metrics.BUILD_INFO.info({"version": "0.1.0", "service": definition.name, "role": "faust"})
    # Consumers are built from configuration only; nothing here connects to anything.
    runtime = Runtime(definition, settings, frozenset({"workers"}), rule_catalogue)
    app = build_faust_app(settings, definition.name)
    detectors = faust_detectors(app, runtime.engine_consumers())
    if not detectors:
        log.error("no detectors to run on faust", service=definition.name)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def readiness() -> dict[str, bool]:
        return {
            "broker": app.producer.started if app.producer else False,
            "recovered": _recovered(app),
        }

    server = http_server(create_app(definition.name, settings, readiness), settings)
    serving = asyncio.create_task(server.serve())
    log.info(
        "faust detectors started",
        service=definition.name,
        rules=[d.rule.name for d in detectors],
        port=settings.http_port,
    )
    try:
        await run_faust_worker(app, stop)
    finally:
        server.should_exit = True
        await serving
    log.info("faust detectors stopped", service=definition.name)
    return 0


def _recovered(app: faust.App) -> bool:
    """Whether faust has rebuilt the tables from their changelogs (its TableManager knows;
    the TableManagerT protocol that `app.tables` is typed as omits `recovery`)."""
    tables = app.tables
    assert isinstance(tables, TableManager)
    return tables.recovery.completed.is_set()
