"""One batched, transactional consumer loop.

Per batch from `getmany`: decode, drop what this group already applied, hand the fresh
events to the handler, and commit in ONE PostgreSQL transaction the handler's state
changes, its outbox messages, dead letters, applied event ids and the consumed offsets.
Every event id is recorded (a producer's copy, even a late one, would otherwise apply
twice); the ids the `ce_id` headers announce are inserted while this process validates the
bodies, so the two biggest costs of a batch overlap. On assignment the engine resumes from
the offsets in the database; it copies them to Kafka (at most once a second while records
flow) only so that lag tools see progress.

A handler whose work also comes due with time (a `DeadlineSweeper`: detector deadlines) is
swept after every batch and every empty poll, in a transaction of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import BaseModel

from orderguard.shared import dead_letters, metrics, telemetry
from orderguard.shared.contract.received import (
    MALFORMED,
    InvalidEvent,
    one_pass,
    parse_envelope,
    received_event,
    typed_event,
)
from orderguard.shared.db import Connection
from orderguard.shared.engine.idle import IdleFetching
from orderguard.shared.envelope import Envelope
from orderguard.shared.events import REGISTRY
from orderguard.shared.kafka import MAX_RECORD_BYTES
from orderguard.shared.logging import get_logger
from orderguard.shared.outbox import OutboxMessage
from orderguard.shared.uow import UnitOfWork

log = get_logger(__name__)


# How often, at most, the offsets stored with the effects are copied to Kafka while records flow.
KAFKA_COMMIT_INTERVAL_S = 1.0


class RejectEvent(Exception):
    """Raised by a handler for an event that can never be applied: dead-lettered at once."""


@dataclass(slots=True)
class Event:
    """A decoded record: the envelope, its typed data, and where it came from."""

    envelope: Envelope
    data: BaseModel
    topic: str
    partition: int
    offset: int

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def type(self) -> str:
        return self.envelope.type


class BatchConsumer(Protocol):
    """A consumer of the engine: one consumer group, its topics, the event types it applies."""

    # Read-only, so frozen dataclasses (the wiring tables' rows) are consumers too.
    @property
    def group(self) -> str: ...
    @property
    def topics(self) -> Sequence[str]: ...
    @property
    def event_types(self) -> frozenset[str]: ...

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        """Apply fresh events, in partition order, inside the batch's transaction."""

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Forget cached state of these partitions (None: all) after a revoke or a rollback."""


@runtime_checkable
class DeadlineSweeper(Protocol):
    """What a handler adds to be swept: work that comes due while no record arrives."""

    def deadlines_due(
        self, owned: set[TopicPartition], polled: set[TopicPartition]
    ) -> set[TopicPartition]:
        """The owned partitions with something due now, without I/O; `polled`: the partitions
        that just delivered records (of any type)."""

    async def sweep(self, uow: UnitOfWork, partitions: set[TopicPartition]) -> None:
        """Do what is due on these partitions inside the sweep's transaction."""


@dataclass(slots=True)
class DeadLetter:
    record: ConsumerRecord
    reason: str
    error: str


def _header(record: ConsumerRecord, name: str) -> bytes | None:
    for key, value in record.headers or ():
        if key == name:
            return value
    return None


def decode_record(record: ConsumerRecord, wanted: frozenset[str]) -> Event | DeadLetter | None:
    """One record as an Event of a wanted type, a dead letter saying why not, or None (not ours).

    Every driver of the pure rules (this engine, the faust driver) decodes with this; the
    validation is the one both doors share (`shared/contract/received.py`)."""
    return _decode_record(record, _header(record, "ce_type"), wanted)


def _decode_record(
    record: ConsumerRecord, type_header: bytes | None, wanted: frozenset[str]
) -> Event | DeadLetter | None:
    hint: str | None = None
    if type_header is not None:
        try:
            hint = type_header.decode()
        except UnicodeDecodeError:
            hint = None
        if hint is not None and hint not in wanted:
            if hint in REGISTRY:
                return None  # a type this group does not apply: skipped without reading the body
            hint = None  # not a type at all: the body says what it is
    value = record.value
    if value is None:
        return DeadLetter(record, MALFORMED, "record has no value")
    if len(value) > MAX_RECORD_BYTES:
        return DeadLetter(
            record, "oversized", f"{len(value)} bytes, over the {MAX_RECORD_BYTES} limit"
        )
    try:
        if hint is not None:
            envelope = received_event(value, hint)
        else:
            envelope = parse_envelope(value)
            if envelope.type not in wanted:
                return None
            envelope = typed_event(envelope)
    except InvalidEvent as exc:
        return DeadLetter(record, exc.reason, str(exc))
    if type_header is not None and hint != envelope.type:
        # A header that lies would route the next copy wrongly: tell the producer.
        return DeadLetter(
            record,
            MALFORMED,
            f"ce_type header {type_header[:200]!r} is not the envelope's type {envelope.type!r}",
        )
    # The type's own envelope model holds `data` as the event's model, not the base's dict.
    data = cast(BaseModel, envelope.data)
    return Event(envelope, data, record.topic, record.partition, record.offset)


def dead_letter_message(letter: DeadLetter, group: str) -> OutboxMessage:
    return dead_letters.dead_letter_message(letter.record, letter.reason, letter.error, group)


class Engine:
    def __init__(
        self,
        handler: BatchConsumer,
        consumer: AIOKafkaConsumer,
        pool: asyncpg.Pool,
        schema: str,
        batch_max: int = 2000,
        max_retries: int = 3,
        retry_backoff_s: float = 0.2,
        idle: IdleFetching | None = None,
    ) -> None:
        self.handler = handler
        # None: fetch continuously, however long nothing arrives.
        self._idle = idle
        self.group = handler.group
        self._consumer = consumer
        self._pool = pool
        self._schema = schema
        self._batch_max = batch_max
        self._max_retries = max_retries
        self._retry_backoff_s = retry_backoff_s
        self.assigned: set[TopicPartition] = set()
        self.started = asyncio.Event()
        self.last_progress = time.monotonic()
        # Per owned partition: the next offset to apply, and when it last moved (or was caught up).
        self._positions: dict[TopicPartition, int] = {}
        self._moved_at: dict[TopicPartition, float] = {}
        self._last_seen: dict[TopicPartition, int] = {}
        self._sweeper = handler if isinstance(handler, DeadlineSweeper) else None
        self._wanted_headers = frozenset(t.encode() for t in handler.event_types)
        # The one-pass validation of each wanted type, by its `ce_type` header.
        self._validators = {t.encode(): one_pass(t) for t in handler.event_types if t in REGISTRY}
        self._uncommitted: dict[TopicPartition, int] = {}
        self._commit_due = 0.0
        self._sweep_failures = 0
        self._sweep_not_before = 0.0

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._consumer.subscribe(list(self.handler.topics), listener=_ResumeFromDatabase(self))
        await self._consumer.start()
        self.started.set()
        log.info("engine started", group=self.group, topics=list(self.handler.topics))
        try:
            while not stop.is_set():
                idle = self._idle
                batches = (
                    await self._consumer.getmany(timeout_ms=200, max_records=self._batch_max)
                    if idle is None or await idle.before_poll(stop)
                    else {}
                )
                self.last_progress = time.monotonic()
                records = [record for partition in batches.values() for record in partition]
                if idle is not None:
                    idle.after_poll(bool(records))
                if records:
                    next_offsets = await self._apply_with_retries(records)
                    self._positions.update(next_offsets)
                    self._uncommitted.update(next_offsets)
                    self._observe_lag(batches)
                # Kafka's copy of the offsets is for lag tools: once a second while records flow,
                # at once when they stop (not a broker round trip per batch).
                now = time.monotonic()
                if self._uncommitted and (not records or now >= self._commit_due):
                    await self._commit_to_kafka(self._uncommitted)
                    self._uncommitted = {}
                    self._commit_due = now + KAFKA_COMMIT_INTERVAL_S
                self._note_progress()
                if self._sweeper is not None:
                    await self._sweep(self._sweeper, set(batches))
        finally:
            try:
                if self._uncommitted:
                    await self._commit_to_kafka(self._uncommitted)
            finally:
                await self._consumer.stop()
                log.info("engine stopped", group=self.group)

    def _note_progress(self) -> None:
        now = time.monotonic()
        for tp in self.assigned:
            highwater = self._consumer.highwater(tp)
            position = self._positions.get(tp)
            moved = position is not None and position != self._last_seen.get(tp)
            caught_up = highwater is None or (position or 0) >= highwater
            if moved or caught_up or tp not in self._moved_at:
                self._moved_at[tp] = now
            if position is not None:
                self._last_seen[tp] = position

    def stalled_partitions(self, after_s: float) -> list[TopicPartition]:
        """Owned partitions with records waiting whose applied offset has not moved for
        `after_s`: the loop may still poll, but this consumer is not doing its work."""
        now = time.monotonic()
        return sorted(
            (tp for tp in self.assigned if now - self._moved_at.get(tp, now) > after_s),
            key=lambda tp: (tp.topic, tp.partition),
        )

    async def _commit_to_kafka(self, next_offsets: dict[TopicPartition, int]) -> None:
        owned = {tp: offset for tp, offset in next_offsets.items() if tp in self.assigned}
        if not owned:
            return
        try:
            await self._consumer.commit(owned)
        except Exception as exc:  # the database holds the truth; Kafka's copy is for lag tools
            log.warning("kafka offset commit failed", group=self.group, error=str(exc))

    def _observe_lag(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        now_ms = time.time() * 1000
        for tp, records in batches.items():
            highwater = self._consumer.highwater(tp)
            if highwater is not None and records:
                labels = (tp.topic, self.group, str(tp.partition))
                metrics.CONSUMER_LAG.labels(*labels).set(max(0, highwater - records[-1].offset - 1))
                metrics.CONSUMER_TIME_LAG.labels(*labels).set(
                    max(0.0, (now_ms - records[-1].timestamp) / 1000)
                )

    async def _sweep(self, sweeper: DeadlineSweeper, polled: set[TopicPartition]) -> None:
        """Let the handler do what is due on the partitions this worker owns, in one transaction
        that holds their offset rows (like a batch) so a zombie owner of them waits."""
        due = sweeper.deadlines_due(set(self.assigned), polled)
        if not due or time.monotonic() < self._sweep_not_before:
            return
        try:
            async with UnitOfWork(self._pool, self._schema) as uow:
                await self._lock_partitions(uow.conn, due)
                await sweeper.sweep(uow, due)
                await uow.commit()
            self._sweep_failures = 0
        except (asyncpg.InterfaceError, OSError):
            self.handler.drop_cached_state(None)
            raise  # the database is gone: let the process restart
        except Exception as exc:
            # Nothing was written; what is due stays due. Back off so a failing rule cannot spin.
            self.handler.drop_cached_state(None)
            self._sweep_failures += 1
            delay = min(30.0, self._retry_backoff_s * 2**self._sweep_failures)
            self._sweep_not_before = time.monotonic() + delay
            log.warning(
                "deadline sweep failed; retrying",
                group=self.group,
                attempt=self._sweep_failures,
                retry_in_s=delay,
                error=repr(exc),
            )

    # -- one batch -------------------------------------------------------------------------

    async def _apply_with_retries(self, records: list[ConsumerRecord]) -> dict[TopicPartition, int]:
        """Apply a batch; retry transient failures with backoff, then isolate and dead-letter."""
        failure = ("failed", "")
        for attempt in range(self._max_retries + 1):
            try:
                return await self._apply(records)
            except (asyncpg.InterfaceError, OSError):
                self.handler.drop_cached_state(None)
                raise  # the database is gone: let the process restart rather than dead-letter
            except RejectEvent as exc:
                # Permanent: no retry. The rollback undid the handler's writes and cache.
                self.handler.drop_cached_state(None)
                failure = ("invalid", str(exc))
                break
            except Exception as exc:
                # The handler's cache may hold state the rollback just undid.
                self.handler.drop_cached_state(None)
                failure = ("failed", repr(exc))
                for topic, count in Counter(r.topic for r in records).items():
                    metrics.EVENTS_CONSUMED.labels(topic, self.group, "retry").inc(count)
                log.warning(
                    "batch failed; retrying",
                    group=self.group,
                    records=len(records),
                    attempt=attempt + 1,
                    error=repr(exc),
                )
                await asyncio.sleep(self._retry_backoff_s * 2**attempt)
        if len(records) == 1:
            return await self._apply(records, failure=failure)
        # Isolate the poison: apply one record at a time, dead-lettering the ones that still fail.
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            offsets.update(await self._apply_with_retries([record]))
        return offsets

    async def _apply(
        self, records: list[ConsumerRecord], failure: tuple[str, str] | None = None
    ) -> dict[TopicPartition, int]:
        """Apply a batch in one transaction; with `failure` (reason, error), dead-letter its events
        instead. Dead-lettered events are not recorded as applied, so a re-drive applies them."""
        started = time.perf_counter()
        started_ns = telemetry.now_ns()
        async with UnitOfWork(self._pool, self._schema) as uow:
            conn = uow.conn
            runs = _runs(records)
            stored = await self._lock_offsets(conn, runs)
            # Records below the stored offset were applied by an earlier owner of the partition.
            if any(stored.get(tp, -1) > first for tp, (first, _) in runs.items()):
                records = [r for r in records if r.offset >= stored.get((r.topic, r.partition), -1)]
                runs = _runs(records)
            type_headers, announced = self._read_headers(records)
            # The ids the producers announce (`ce_id`) are recorded while the bodies are decoded:
            # PostgreSQL inserts them in its own process while this one validates.
            recording = None
            if failure is None and announced:
                recording = asyncio.ensure_future(self._record_applied(conn, announced))
                await asyncio.sleep(0)  # let it send the statement before decoding
            try:
                events, dead, skipped = self._decode(records, type_headers)
            finally:
                recorded = await recording if recording is not None else 0
            if failure is not None:
                dead += [DeadLetter(_record_of(e, records), *failure) for e in events]
                events = []
            events, duplicates = await self._drop_applied(conn, events, announced, recorded)
            if events:
                await self.handler.handle(uow, events)
            uow.outbox.extend(self._dead_letter_message(letter) for letter in dead)
            next_offsets = {TopicPartition(*tp): last + 1 for tp, (_, last) in runs.items()}
            await conn.execute(
                "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)"
                " SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[])"
                " ON CONFLICT (group_id, topic, partition) DO UPDATE"
                " SET next_offset = EXCLUDED.next_offset, updated_at = now()",
                self.group,
                [tp.topic for tp in next_offsets],
                [tp.partition for tp in next_offsets],
                list(next_offsets.values()),
            )
            await uow.commit()
        if telemetry.enabled():
            telemetry.record_consumed(
                ((e.topic, e.type, e.id, e.envelope.traceparent) for e in events),
                self.group,
                started_ns,
                telemetry.now_ns(),
            )
        self._count(events, duplicates, skipped, dead)
        metrics.BATCH_DURATION.labels(self.group).observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.labels(self.group).observe(len(records))
        return next_offsets

    async def _lock_offsets(
        self, conn: Connection, partitions: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        """Lock this batch's offset rows so a zombie owner of the same partitions waits, then skips."""
        locked = await self._lock_partitions(
            conn, {TopicPartition(topic, partition) for topic, partition in partitions}
        )
        return {(tp.topic, tp.partition): offset for tp, offset in locked.items()}

    async def _lock_partitions(
        self, conn: Connection, partitions: set[TopicPartition]
    ) -> dict[TopicPartition, int]:
        rows = await conn.fetch(
            "SELECT topic, partition, next_offset FROM consumer_offsets"
            " WHERE group_id = $1 AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))"
            " FOR UPDATE",
            self.group,
            [tp.topic for tp in partitions],
            [tp.partition for tp in partitions],
        )
        return {TopicPartition(row["topic"], row["partition"]): row["next_offset"] for row in rows}

    def _read_headers(
        self, records: list[ConsumerRecord]
    ) -> tuple[list[bytes | None], dict[str, None]]:
        """Each record's `ce_type` header, and the `ce_id`s of the records it says are ours."""
        wanted = self._wanted_headers
        type_headers: list[bytes | None] = []
        announced: dict[str, None] = {}
        for record in records:
            type_header = event_id = None
            for key, value in record.headers or ():
                if key == "ce_type":
                    type_header = value
                elif key == "ce_id":
                    event_id = value
            type_headers.append(type_header)
            if event_id is not None and type_header in wanted:
                # Not an id of ours if not UTF-8: the body's id is recorded after decoding.
                # (No contextlib.suppress here: it costs half a microsecond per record.)
                try:  # noqa: SIM105
                    announced[event_id.decode()] = None
                except UnicodeDecodeError:
                    pass
        return type_headers, announced

    def _decode(
        self, records: list[ConsumerRecord], type_headers: list[bytes | None]
    ) -> tuple[list[Event], list[DeadLetter], Counter[str]]:
        """Events to apply, dead letters, and records skipped (per topic) as not ours."""
        events: list[Event] = []
        dead: list[DeadLetter] = []
        skipped: Counter[str] = Counter()
        wanted = self.handler.event_types
        validators = self._validators
        for record, type_header in zip(records, type_headers, strict=True):
            # The usual record: a wanted type in its header, a body valid for it. One pydantic-core
            # call per record; anything else takes the explaining path below.
            validate = validators.get(type_header)  # type: ignore[arg-type]
            value = record.value
            if validate is not None and value is not None and len(value) <= MAX_RECORD_BYTES:
                try:
                    envelope = validate(value)
                except ValueError:
                    pass  # explained by _decode_record
                else:
                    # The type's own envelope model holds `data` as the event's model.
                    data = cast(BaseModel, envelope.data)
                    events.append(
                        Event(envelope, data, record.topic, record.partition, record.offset)
                    )
                    continue
            decoded = _decode_record(record, type_header, wanted)
            if type(decoded) is Event:
                events.append(decoded)
            elif decoded is None:
                skipped[record.topic] += 1
            else:
                dead.append(decoded)  # type: ignore[arg-type]
        return events, dead, skipped

    async def _record_applied(self, conn: Connection, event_ids: Iterable[str]) -> int:
        """Record event ids as applied by this group; how many were new."""
        status = await conn.execute(
            "INSERT INTO applied_events (group_id, event_id) SELECT $1, unnest($2::text[])"
            " ON CONFLICT DO NOTHING",
            self.group,
            list(event_ids),
        )
        return int(status.rsplit(" ", 1)[1])  # "INSERT 0 <rows>"

    async def _drop_applied(
        self,
        conn: Connection,
        events: list[Event],
        announced: dict[str, None],
        recorded: int,
    ) -> tuple[list[Event], list[Event]]:
        """Keep only the events not applied before (first copy wins), given the `announced` ids
        already recorded (`recorded` of them new); records the others' ids too."""
        if recorded == 0 and not events:
            return events, []
        unique: dict[str, Event] = {}
        for event in events:
            unique.setdefault(event.envelope.id, event)
        # Rare: an event without (or with another) ce_id header; an announced id that is no event.
        unannounced = [event_id for event_id in unique if event_id not in announced]
        if unannounced:
            recorded += await self._record_applied(conn, unannounced)
        if len(unique) != len(announced) + len(unannounced):
            strays = [event_id for event_id in announced if event_id not in unique]
            status = await conn.execute(
                "DELETE FROM applied_events WHERE group_id = $1 AND event_id = ANY($2::text[])"
                " AND xmin = pg_current_xact_id()::xid",
                self.group,
                strays,
            )
            recorded -= int(status.rsplit(" ", 1)[1])
        if recorded == len(events):
            return events, []  # every event fresh and unique: the usual case, no rows sent back
        # Some were applied before: the fresh ones are the rows this transaction inserted.
        fresh_ids = {
            row["event_id"]
            for row in await conn.fetch(
                "SELECT event_id FROM applied_events WHERE group_id = $1"
                " AND event_id = ANY($2::text[]) AND xmin = pg_current_xact_id()::xid",
                self.group,
                list(unique),
            )
        }
        fresh = [event for event_id, event in unique.items() if event_id in fresh_ids]
        fresh_events = {id(event) for event in fresh}
        return fresh, [event for event in events if id(event) not in fresh_events]

    def _dead_letter_message(self, letter: DeadLetter) -> OutboxMessage:
        return dead_letter_message(letter, self.group)

    def _count(
        self,
        events: list[Event],
        duplicates: list[Event],
        skipped: Counter[str],
        dead: list[DeadLetter],
    ) -> None:
        outcomes: Counter[tuple[str, str]] = Counter()
        if len(self.handler.topics) == 1:  # the usual case: no need to look at each event
            topic = self.handler.topics[0]
            outcomes[(topic, "applied")] = len(events)
            outcomes[(topic, "duplicate")] = len(duplicates)
        else:
            outcomes.update((event.topic, "applied") for event in events)
            outcomes.update((event.topic, "duplicate") for event in duplicates)
        outcomes.update((letter.record.topic, "dlq") for letter in dead)
        for topic, count in skipped.items():
            outcomes[(topic, "skipped")] += count
        for (topic, outcome), count in outcomes.items():
            if count:
                metrics.EVENTS_CONSUMED.labels(topic, self.group, outcome).inc(count)

    # -- rebalance -------------------------------------------------------------------------

    async def resume_from_database(self, assigned: set[TopicPartition]) -> None:
        metrics.REBALANCES.labels(self.group).inc()
        self.assigned = set(assigned)
        if self._idle is not None:
            self._idle.active()  # a new assignment starts unpaused: look at what it holds
        if not assigned:
            return
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT topic, partition, next_offset FROM consumer_offsets WHERE group_id = $1",
                self.group,
            )
        stored = {
            TopicPartition(row["topic"], row["partition"]): row["next_offset"] for row in rows
        }
        for tp in assigned:
            if tp in stored:
                self._consumer.seek(tp, stored[tp])
                self._positions[tp] = stored[tp]
        log.info(
            "partitions assigned",
            group=self.group,
            partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned),
            resumed=len(assigned & stored.keys()),
        )

    def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.assigned -= revoked
        for tp in revoked:
            for progress in (self._positions, self._moved_at, self._last_seen):
                progress.pop(tp, None)
        self.handler.drop_cached_state(revoked)
        # Another worker reports these partitions now; stale gauges here would fake a stall.
        for tp in revoked:
            labels = (tp.topic, self.group, str(tp.partition))
            for gauge in (metrics.CONSUMER_LAG, metrics.CONSUMER_TIME_LAG):
                with contextlib.suppress(KeyError):
                    gauge.remove(*labels)


class _ResumeFromDatabase(ConsumerRebalanceListener):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self._engine.partitions_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._engine.resume_from_database(set(assigned))


def _record_of(event: Event, records: list[ConsumerRecord]) -> ConsumerRecord:
    for record in records:
        if (
            record.topic == event.topic
            and record.partition == event.partition
            and record.offset == event.offset
        ):
            return record
    raise LookupError("event without its record")


def _runs(records: list[ConsumerRecord]) -> dict[tuple[str, int], tuple[int, int]]:
    """Per (topic, partition) of a batch, its first and last offset; getmany hands records over
    partition by partition, in offset order (a partition met again only extends its run)."""
    runs: dict[tuple[str, int], tuple[int, int]] = {}
    if not records:
        return runs
    first = records[0]
    tp, start = (first.topic, first.partition), first.offset
    last = start
    for record in records:
        if record.partition != tp[1] or record.topic != tp[0]:
            runs[tp] = (runs[tp][0], last) if tp in runs else (start, last)
            tp, start = (record.topic, record.partition), record.offset
        last = record.offset
    runs[tp] = (runs[tp][0], last) if tp in runs else (start, last)
    return runs
