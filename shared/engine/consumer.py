"""One batched, transactional consumer loop: one Kafka consumer group, one or more handlers.

Per batch from `getmany`: decode once for every handler, drop what this group already applied,
hand each handler the fresh events of its topics and types (in the group's order of handlers,
each in partition order), and commit in ONE PostgreSQL transaction the handlers' state
changes, their outbox messages, dead letters, applied event ids and the consumed offsets.
Every event id is recorded (a producer's copy, even a late one, would otherwise apply
twice); the ids the `ce_id` headers announce are inserted while this process validates the
bodies, so the two biggest costs of a batch overlap. On assignment the engine resumes from
the offsets in the database; it copies them to Kafka (at most once a second while records
flow) only so that lag tools see progress.

A batch with nothing for this group (every record's `ce_type` a known type none of its handlers
applies: a worker reading a topic for a few of its types) opens no transaction: its offsets are
stored later, at most once a second and at once when records stop (`_store_passed`). Read again
after a crash, such records are only skipped again; a stored offset never moves back.

A handler whose work also comes due with time (a `DeadlineSweeper`: detector deadlines) is
swept after every batch and every empty poll, in a transaction of its own.

A group that takes over from older groups (a service's worker that ran one group per handler)
resumes where they stopped (see `resume_from_database`), once they have stopped: until then
it holds those partitions, paused (see `_take_over_held`).
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
import prometheus_client
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError
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
from orderguard.shared.engine.takeover import FormerGroups
from orderguard.shared.envelope import Envelope
from orderguard.shared.events import REGISTRY
from orderguard.shared.kafka import MAX_RECORD_BYTES, FetchWait
from orderguard.shared.logging import get_logger
from orderguard.shared.outbox import OutboxMessage
from orderguard.shared.uow import UnitOfWork

log = get_logger(__name__)


# How often, at most, the offsets stored with the effects are copied to Kafka while records flow.
KAFKA_COMMIT_INTERVAL_S = 1.0
# The offsets upsert of every batch, and of records passed over. An offset never moves back: a
# zombie owner's late write cannot undo a newer owner's progress.
STORE_OFFSETS = (
    "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset)"
    " SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[])"
    " ON CONFLICT (group_id, topic, partition) DO UPDATE"
    " SET next_offset = GREATEST(consumer_offsets.next_offset, EXCLUDED.next_offset),"
    " updated_at = now()"
)
# How often, at most, a held take-over asks again whether the former groups have stopped.
TAKEOVER_RECHECK_MAX_S = 10.0
# How long a turn of the loop waits for where a partition without a stored offset starts.
POSITION_TIMEOUT_S = 1.0


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
    """A handler of the engine: its name (what its timeline entries, logs and dead letters
    name), the topics and event types it applies."""

    # Read-only, so frozen dataclasses (the wiring tables' rows) are consumers too.
    @property
    def name(self) -> str: ...
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
        self,
        owned: set[TopicPartition],
        polled: set[TopicPartition],
        behind: set[TopicPartition],
    ) -> set[TopicPartition]:
        """The owned partitions with something due now, without I/O; `polled`: the partitions
        that just delivered records (of any type); `behind`: those known to hold records not
        applied yet (the consumer's position below the partition's high watermark)."""

    async def sweep(self, uow: UnitOfWork, partitions: set[TopicPartition]) -> None:
        """Do what is due on these partitions inside the sweep's transaction."""


@dataclass(slots=True)
class DeadLetter:
    record: ConsumerRecord
    reason: str
    error: str


def _header(record: ConsumerRecord, name: str) -> bytes | None:
    """A record's header of that name; the last one if it has several (as Kafka's
    `Headers.lastHeader`, and as `Engine._read_headers` takes them in one pass)."""
    found = None
    for key, value in record.headers or ():
        if key == name:
            found = value
    return found


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


class HandlerFailed(Exception):
    """A handler's error, saying which handler of the group raised it."""

    def __init__(self, handler: str, error: Exception) -> None:
        super().__init__(f"handler {handler} failed: {error!r}")
        self.handler = handler


@dataclass(slots=True)
class _Route:
    """A handler of the group and what of each batch it takes."""

    handler: BatchConsumer
    topics: frozenset[str]
    event_types: frozenset[str]
    # It reads every topic and type of the group: the batch's events as they are.
    takes_all: bool
    # Events it was handed in batches that committed.
    applied: prometheus_client.Counter
    # Its deadline sweeps: consecutive failures, and no sweep before this (monotonic time).
    sweep_failures: int = 0
    sweep_not_before: float = 0.0


class Engine:
    def __init__(
        self,
        group: str,
        handlers: Sequence[BatchConsumer],
        consumer: AIOKafkaConsumer,
        pool: asyncpg.Pool,
        schema: str,
        batch_max: int = 2000,
        max_retries: int = 3,
        retry_backoff_s: float = 0.2,
        idle: IdleFetching | None = None,
        former_groups: FormerGroups | None = None,
    ) -> None:
        if not handlers:
            raise ValueError(f"consumer group {group} has no handler")
        names = [handler.name for handler in handlers]
        if len(set(names)) != len(names):
            raise ValueError(f"consumer group {group} has two handlers of one name: {names}")
        # Where offsets, applied event ids and dead letters are kept; the Kafka group (prefixed).
        self.group = group
        self.handlers = list(handlers)
        self.topics = list(dict.fromkeys(topic for h in handlers for topic in h.topics))
        self.event_types = frozenset().union(*(h.event_types for h in handlers))
        self._routes = [
            _Route(
                h,
                frozenset(h.topics),
                h.event_types,
                takes_all=set(h.topics) == set(self.topics) and h.event_types == self.event_types,
                applied=metrics.HANDLER_EVENTS_APPLIED.labels(group, h.name),
            )
            for h in handlers
        ]
        # The groups its handlers ran under before (one each, named after them): read once,
        # at assignment, to take over where they stopped.
        self._former_groups = [name for name in names if name != group]
        # Asked before a take-over whether they still run (None: taken over at once).
        self._former_groups_check = former_groups
        # Partitions to take over, paused until the former groups have stopped; when to ask again.
        self._held: set[TopicPartition] = set()
        self._held_checks = 0
        self._held_check_at = 0.0
        # None: fetch continuously, however long nothing arrives.
        self._idle = idle
        self._fetch_wait = FetchWait(consumer)
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
        # Per owned partition taken over from former groups: each handler's next offset there
        # (below it, the handler applied the events under its former group). Empty once passed.
        self._floors: dict[TopicPartition, dict[str, int]] = {}
        self._wanted_headers = frozenset(t.encode() for t in self.event_types)
        # The one-pass validation of each wanted type, by its `ce_type` header.
        self._validators = {t.encode(): one_pass(t) for t in self.event_types if t in REGISTRY}
        self._uncommitted: dict[TopicPartition, int] = {}
        self._commit_due = 0.0
        # The `ce_type` headers of known types no handler here applies: records skipped unread.
        self._not_ours = frozenset(t.encode() for t in REGISTRY if t not in self.event_types)
        # Next offsets of partitions read past records not ours, not yet stored (see
        # `_store_passed`).
        self._unstored: dict[TopicPartition, int] = {}

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._consumer.subscribe(self.topics, listener=_ResumeFromDatabase(self))
        await self._consumer.start()
        self.started.set()
        log.info(
            "engine started",
            group=self.group,
            topics=self.topics,
            handlers=[h.name for h in self.handlers],
        )
        try:
            while not stop.is_set():
                if self._held and time.monotonic() >= self._held_check_at:
                    await self._take_over_held()
                unknown = self.assigned - self._held - self._positions.keys()
                if unknown:
                    await self._learn_positions(unknown)
                idle = self._idle
                fetching = idle is None or await idle.before_poll(stop)
                if self._held:
                    self._consumer.pause(*self._held)  # idle fetching resumes the whole assignment
                batches = (
                    await self._consumer.getmany(
                        timeout_ms=200 if idle is None else idle.poll_timeout_ms,
                        max_records=self._batch_max,
                    )
                    if fetching
                    else {}
                )
                self.last_progress = time.monotonic()
                records = [record for partition in batches.values() for record in partition]
                # At once, before anything awaits: aiokafka's fetcher builds the next fetch as
                # the loop turns (with the wait set here), and pausing now keeps it unsent.
                read_to_end = self._read_to_end(batches, len(records))
                self._fetch_wait.follow(
                    records_wait=not read_to_end, full_poll=len(records) >= self._batch_max
                )
                if idle is not None:
                    idle.after_poll(self._flowing(records, read_to_end), read_to_end)
                if records:
                    next_offsets = await self._apply_with_retries(records)
                    self._positions.update(next_offsets)
                    self._uncommitted.update(next_offsets)
                    self._observe_lag(batches)
                await self._store_pending(stopped=not records and (idle is None or idle.idle))
                self._note_progress()
                await self._sweep_due(set(batches))
        finally:
            try:
                await self._store_pending(stopped=True)
            finally:
                await self._consumer.stop()
                log.info("engine stopped", group=self.group)

    async def _store_pending(self, stopped: bool) -> None:
        """Store the offsets of records passed over, and copy the offsets to Kafka (for lag
        tools): once a second while records flow, at once when they `stopped` (not a round trip
        per batch). Offsets a failed store kept are stored at the next of these."""
        now = time.monotonic()
        pending = self._uncommitted or self._unstored
        if pending and (stopped or now >= self._commit_due):
            await self._store_passed()
            await self._commit_to_kafka(self._uncommitted)
            self._uncommitted = {}
            self._commit_due = now + KAFKA_COMMIT_INTERVAL_S

    def _read_to_end(self, batches: dict[TopicPartition, list[ConsumerRecord]], count: int) -> bool:
        """Whether a poll left nothing waiting: not a full batch, and each partition ends, as of
        its last fetch, where this poll leaves it. Each owned partition, not only those the poll
        brought records of: Tansu answers a partition with its high watermark and no records
        when listing the partition's batches outlasts the fetch's wait (see `FetchWait`)."""
        if count >= self._batch_max:
            return False
        for tp in (self.assigned - self._held) | batches.keys():
            records = batches.get(tp)
            if self._records_wait(tp, records[-1].offset + 1 if records else None):
                return False
        return True

    def _records_wait(self, tp: TopicPartition, position: int | None = None) -> bool:
        """Whether `tp`'s high watermark, as of its last fetch, is past `position` (by default
        the next offset to apply there)."""
        highwater = self._consumer.highwater(tp)
        if position is None:
            position = self._positions.get(tp)
        return highwater is not None and position is not None and position < highwater

    async def _learn_positions(self, unknown: set[TopicPartition]) -> None:
        """Where the fetches of owned partitions without a stored offset start (aiokafka's
        committed or earliest offset), so that `_read_to_end` sees records waiting there
        before any is applied."""
        for tp in unknown:
            # Revoked meanwhile, or not known yet (the broker has not answered where to start):
            # asked again at the next turn, so this loop's sweeps do not wait on the broker.
            with contextlib.suppress(IllegalStateError, TimeoutError):
                async with asyncio.timeout(POSITION_TIMEOUT_S):
                    position = await self._consumer.position(tp)
                if tp in self.assigned:
                    self._positions[tp] = position

    def _flowing(self, records: list[ConsumerRecord], read_to_end: bool) -> bool:
        """Whether a poll's records count as records flowing (for when the engine looks and
        when it is idle): records it applies, or a backlog of any; not records it only reads
        past once it has read to the end, or a worker that reads a topic for a few of its types
        would keep looking as long as the others are published."""
        return bool(records) and not (read_to_end and self._none_ours(records))

    @property
    def waiting_for_former_groups(self) -> bool:
        """Partitions wait for former groups to stop: this worker does not do their work yet."""
        return bool(self._held)

    async def _take_over_held(self) -> None:
        """Take the held partitions over if their former groups have stopped; else ask again
        later (backing off, at most every TAKEOVER_RECHECK_MAX_S)."""
        assert self._former_groups_check is not None
        error: str | None = None
        try:
            running = await self._former_groups_check.still_running(self._former_groups)
        except Exception as exc:  # the broker's answer is needed: ask again
            running, error = list(self._former_groups), repr(exc)
        if running:
            self._held_checks += 1
            delay = min(TAKEOVER_RECHECK_MAX_S, 0.5 * 2**self._held_checks)
            self._held_check_at = time.monotonic() + delay
            log.warning(
                "waiting for former consumer groups to stop before taking partitions over",
                group=self.group,
                former_groups=running,
                partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in self._held),
                retry_in_s=delay,
                error=error,
            )
            return
        held, self._held, self._held_checks = self._held, set(), 0
        await self._resume(held, hold_take_overs=False)
        self._consumer.resume(*(held & self.assigned))

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

    def _behind(self) -> set[TopicPartition]:
        """Owned partitions whose high watermark, as of their last fetch, is past the next
        offset to apply: records wait there."""
        return {tp for tp in self.assigned if self._records_wait(tp)}

    def stalled_partitions(self, after_s: float) -> list[TopicPartition]:
        """Owned partitions with records waiting whose applied offset has not moved for
        `after_s`: the loop may still poll, but this consumer is not doing its work."""
        now = time.monotonic()
        return sorted(
            (tp for tp in self.assigned if now - self._moved_at.get(tp, now) > after_s),
            key=lambda tp: (tp.topic, tp.partition),
        )

    async def _store_passed(self) -> None:
        """Store the offsets of partitions read past records not ours (no transaction of their
        own at the time). Not durable at commit (`synchronous_commit` off): lost in a crash, the
        records are read and skipped again; so a slow disk does not hold this loop."""
        unstored = {tp: o for tp, o in self._unstored.items() if tp in self.assigned}
        if not unstored:
            self._unstored = {}
            return
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SET LOCAL synchronous_commit TO off")
                await self._store_offsets(conn, unstored)
        except (asyncpg.InterfaceError, OSError):
            raise  # the database is gone: let the process restart
        except Exception as exc:  # kept for the next time: nothing depends on it meanwhile
            log.warning(
                "storing offsets of skipped records failed", group=self.group, error=repr(exc)
            )
            return
        for tp, offset in unstored.items():
            if self._unstored.get(tp) == offset:
                del self._unstored[tp]

    async def _store_offsets(
        self, conn: Connection, next_offsets: dict[TopicPartition, int]
    ) -> None:
        await conn.execute(
            STORE_OFFSETS,
            self.group,
            [tp.topic for tp in next_offsets],
            [tp.partition for tp in next_offsets],
            list(next_offsets.values()),
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

    async def _sweep_due(self, polled: set[TopicPartition]) -> None:
        """Ask every handler that is a deadline sweeper what is due, and sweep it."""
        behind: set[TopicPartition] | None = None
        for route in self._routes:
            if isinstance(route.handler, DeadlineSweeper):
                if behind is None:
                    behind = self._behind()
                await self._sweep(route, polled, behind)

    async def _sweep(
        self, route: _Route, polled: set[TopicPartition], behind: set[TopicPartition]
    ) -> None:
        """Let a sweeper do what is due on the partitions of its topics this worker owns, in one
        transaction that holds their offset rows (like a batch) so a zombie owner of them waits."""
        sweeper = cast(DeadlineSweeper, route.handler)
        topics = route.topics

        def its(partitions: set[TopicPartition]) -> set[TopicPartition]:
            return {tp for tp in partitions if tp.topic in topics}

        due = sweeper.deadlines_due(its(self.assigned), its(polled), its(behind))
        if not due or time.monotonic() < route.sweep_not_before:
            return
        try:
            async with UnitOfWork(self._pool, self._schema) as uow:
                await self._lock_partitions(uow.conn, due)
                await sweeper.sweep(uow, due)
                await uow.commit()
            route.sweep_failures = 0
        except (asyncpg.InterfaceError, OSError):
            route.handler.drop_cached_state(None)
            raise  # the database is gone: let the process restart
        except Exception as exc:
            # Nothing was written; what is due stays due. Back off so a failing rule cannot spin.
            route.handler.drop_cached_state(None)
            route.sweep_failures += 1
            delay = min(30.0, self._retry_backoff_s * 2**route.sweep_failures)
            route.sweep_not_before = time.monotonic() + delay
            log.warning(
                "deadline sweep failed; retrying",
                group=self.group,
                handler=route.handler.name,
                attempt=route.sweep_failures,
                retry_in_s=delay,
                error=repr(exc),
            )

    def _drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        for handler in self.handlers:
            handler.drop_cached_state(partitions)

    # -- one batch -------------------------------------------------------------------------

    async def _apply_with_retries(self, records: list[ConsumerRecord]) -> dict[TopicPartition, int]:
        """Apply a batch; retry transient failures with backoff, then isolate and dead-letter."""
        failure = ("failed", "")
        for attempt in range(self._max_retries + 1):
            try:
                return await self._apply(records)
            except (asyncpg.InterfaceError, OSError):
                self._drop_cached_state(None)
                raise  # the database is gone: let the process restart rather than dead-letter
            except RejectEvent as exc:
                # Permanent: no retry. The rollback undid the handlers' writes and cache.
                self._drop_cached_state(None)
                failure = ("invalid", str(exc))
                break
            except Exception as exc:
                # The handlers' caches may hold state the rollback just undid.
                self._drop_cached_state(None)
                failure = ("failed", str(exc) if isinstance(exc, HandlerFailed) else repr(exc))
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
        if failure is None and not self._floors and self._none_ours(records):
            return self._pass_over(records, started)
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
            handed = await self._dispatch(uow, events) if events else []
            uow.outbox.extend(self._dead_letter_message(letter) for letter in dead)
            next_offsets = {TopicPartition(*tp): last + 1 for tp, (_, last) in runs.items()}
            if self._floors:
                await self._forget_former_offsets(uow, next_offsets)
            await self._store_offsets(conn, next_offsets)
            await uow.commit()
        for tp in next_offsets:
            self._unstored.pop(tp, None)  # stored just now, further on
        if telemetry.enabled():
            telemetry.record_consumed(
                ((e.topic, e.type, e.id, e.envelope.traceparent) for e in events),
                self.group,
                started_ns,
                telemetry.now_ns(),
            )
        self._count(events, duplicates, skipped, dead)
        for route, count in handed:
            route.applied.inc(count)
        metrics.BATCH_DURATION.labels(self.group).observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.labels(self.group).observe(len(records))
        return next_offsets

    def _none_ours(self, records: list[ConsumerRecord]) -> bool:
        """Whether every record's `ce_type` names a known type none of this group's handlers
        applies: the decode would skip each without reading its body."""
        not_ours = self._not_ours
        return all(_header(record, "ce_type") in not_ours for record in records)

    def _pass_over(
        self, records: list[ConsumerRecord], started: float
    ) -> dict[TopicPartition, int]:
        """A batch of records not ours: counted as skipped, its offsets kept to store later."""
        next_offsets = {TopicPartition(*tp): last + 1 for tp, (_, last) in _runs(records).items()}
        self._unstored.update(next_offsets)
        self._count([], [], Counter(record.topic for record in records), [])
        metrics.BATCH_DURATION.labels(self.group).observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.labels(self.group).observe(len(records))
        return next_offsets

    async def _dispatch(self, uow: UnitOfWork, events: list[Event]) -> list[tuple[_Route, int]]:
        """Hand each handler, in the group's order, the events of its topics and types (above
        its floor where the group took over from its former group), in partition order; what
        each was handed."""
        handed: list[tuple[_Route, int]] = []
        floors = self._floors
        for route in self._routes:
            if route.takes_all and not floors:
                mine = events
            else:
                topics, types, name = route.topics, route.event_types, route.handler.name
                mine = [
                    event
                    for event in events
                    if event.topic in topics
                    and event.envelope.type in types
                    and (not floors or event.offset >= _floor(floors, event, name))
                ]
            if not mine:
                continue
            handed.append((route, len(mine)))
            handler = route.handler
            try:
                await handler.handle(uow, mine)
            except RejectEvent as exc:
                raise RejectEvent(f"handler {handler.name} rejected: {exc}") from exc
            except (asyncpg.InterfaceError, OSError):
                raise  # the database is gone: not the handler's failure
            except Exception as exc:
                raise HandlerFailed(handler.name, exc) from exc
        return handed

    async def _forget_former_offsets(
        self, uow: UnitOfWork, next_offsets: dict[TopicPartition, int]
    ) -> None:
        """Once the group's position passes every floor of a partition, its former groups' offset
        rows go (in the batch's transaction) and so does the per-event floor check."""
        passed = [
            tp
            for tp, offset in next_offsets.items()
            if tp in self._floors and offset >= max(self._floors[tp].values(), default=0)
        ]
        if not passed:
            return
        await uow.conn.execute(
            "DELETE FROM consumer_offsets WHERE group_id = ANY($1::text[])"
            " AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))",
            self._former_groups,
            [tp.topic for tp in passed],
            [tp.partition for tp in passed],
        )

        def passed_floors() -> None:
            for tp in passed:
                self._floors.pop(tp, None)
            log.info(
                "former consumer groups' offsets passed",
                group=self.group,
                partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in passed),
            )

        uow.after_commit(passed_floors)

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
        wanted = self.event_types
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
        if len(self.topics) == 1:  # no need to look at each event
            topic = self.topics[0]
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
        """Seek each assigned partition to the next offset stored with the effects.

        A partition this group has no offset for yet, that its handlers read under former
        groups of their own (one group per handler, named after it), is taken over: the
        group starts at the lowest of their offsets when every handler reading the topic has
        one (else where Kafka's reset policy says), and each handler keeps its own offset as a
        floor: it is not handed events below it, which it applied before. The former rows go
        once the group has passed them. The first take-over also copies the ids the former
        groups applied, so a producer's duplicate straddling the upgrade is still dropped.
        With `former_groups`, the take-over waits until those groups have stopped: a worker of
        theirs still running would apply the same events again."""
        metrics.REBALANCES.labels(self.group).inc()
        self.assigned = set(assigned)
        if self._idle is not None:
            self._idle.active()  # a new assignment starts unpaused: look at what it holds
        if not assigned:
            return
        await self._resume(set(assigned), hold_take_overs=self._former_groups_check is not None)

    async def _resume(self, assigned: set[TopicPartition], hold_take_overs: bool) -> None:
        """Seek to the stored offsets; a partition to take over is held (paused, not sought) if
        `hold_take_overs`, until `_take_over_held` has seen its former groups stop."""
        held: set[TopicPartition] = set()
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT group_id, topic, partition, next_offset FROM consumer_offsets"
                " WHERE group_id = ANY($1::text[])",
                [self.group, *self._former_groups],
            )
            stored: dict[TopicPartition, int] = {}
            former: dict[TopicPartition, dict[str, int]] = {}
            for row in rows:
                tp = TopicPartition(row["topic"], row["partition"])
                if row["group_id"] == self.group:
                    stored[tp] = row["next_offset"]
                else:
                    former.setdefault(tp, {})[row["group_id"]] = row["next_offset"]
            taken_over = 0
            # Former groups' offsets anywhere: an upgrade is under way; until they stopped,
            # every partition this group has no offset of its own for waits (one they never
            # stored an offset for too: they may be reading it).
            upgrading = bool(former)
            for tp in assigned:
                if tp not in self.assigned:
                    continue  # revoked by a rebalance while a held take-over was being done
                floors = former.get(tp, {})
                position = stored.get(tp)
                if position is None and upgrading and hold_take_overs:
                    held.add(tp)
                    continue
                if position is None and floors:
                    taken_over += 1
                    readers = [r.handler.name for r in self._routes if tp.topic in r.topics]
                    if all(name in floors for name in readers):
                        position = min(floors.values())
                if floors:
                    self._floors[tp] = dict(floors)
                self._unstored.pop(tp, None)  # read again from the stored offset
                if position is not None:
                    self._consumer.seek(tp, position)
                    self._positions[tp] = position
            if taken_over:
                await self._adopt_applied_ids(conn, former)
        if held:
            self._consumer.pause(*held)
            self._held |= held
            self._held_check_at = 0.0  # ask at once, from the loop (not in the rebalance)
        log.info(
            "partitions assigned",
            group=self.group,
            partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned),
            resumed=len(assigned & stored.keys()),
            taken_over=taken_over,
            held=len(held),
        )

    async def _adopt_applied_ids(
        self, conn: Connection, former: dict[TopicPartition, dict[str, int]]
    ) -> None:
        """Copy into this group the event ids its former groups applied, once (while the group
        has stored no offset yet). Only ids that EVERY handler reading their topic applied: an
        id one of them has not applied yet must still reach it. (An applied id's topic is not
        stored: it is one that every former group holding the id reads.)"""
        groups = sorted({name for floors in former.values() for name in floors})
        readers = {
            topic: {r.handler.name for r in self._routes if topic in r.topics}
            for topic in self.topics
        }
        topics_of = {r.handler.name: r.topics for r in self._routes}

        def applied_by_every_reader(holders: set[str]) -> bool:
            candidates = frozenset.intersection(*(topics_of[name] for name in holders))
            return bool(candidates) and all(readers[topic] <= holders for topic in candidates)

        async with conn.transaction():
            # Two workers taking partitions over at once copy one after the other.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.group)
            if await conn.fetchval(
                "SELECT EXISTS (SELECT FROM consumer_offsets WHERE group_id = $1)", self.group
            ):
                return
            holders = "string_agg(group_id, ',' ORDER BY group_id)"
            patterns = [
                row["holders"]
                for row in await conn.fetch(
                    f"SELECT DISTINCT {holders} AS holders FROM applied_events"
                    " WHERE group_id = ANY($1::text[]) GROUP BY event_id",
                    groups,
                )
            ]
            copied = [p for p in patterns if applied_by_every_reader(set(p.split(",")))]
            status = await conn.execute(
                "INSERT INTO applied_events (group_id, event_id, applied_at)"
                " SELECT $1, event_id, min(applied_at) FROM applied_events"
                f" WHERE group_id = ANY($2::text[]) GROUP BY event_id HAVING {holders} = ANY($3::text[])"
                " ON CONFLICT DO NOTHING",
                self.group,
                groups,
                copied,
            )
        log.info(
            "applied event ids of former consumer groups copied",
            group=self.group,
            former_groups=groups,
            copied=int(status.rsplit(" ", 1)[1]),
        )

    def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.assigned -= revoked
        self._held -= revoked
        for tp in revoked:
            for progress in (
                self._positions,
                self._moved_at,
                self._last_seen,
                self._floors,
                self._unstored,
            ):
                progress.pop(tp, None)
        self._drop_cached_state(revoked)
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


def _floor(floors: dict[TopicPartition, dict[str, int]], event: Event, handler: str) -> int:
    """The offset below which `handler` applied the events of this event's partition before."""
    return floors.get(TopicPartition(event.topic, event.partition), {}).get(handler, 0)


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
