"""The transactional outbox: messages written with the state change, published by one relay per schema."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from orderguard.shared import metrics
from orderguard.shared.db import Connection
from orderguard.shared.envelope import Envelope
from orderguard.shared.events import REGISTRY
from orderguard.shared.logging import get_logger
from orderguard.shared.stopping import stopped_within

log = get_logger(__name__)

# What no retry can fix for one row: it is parked (kept, with the reason) and the relay goes on.
UNPUBLISHABLE: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    CorruptRecordException,
)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, topic: str, envelope: Envelope, key: str | None = None) -> OutboxMessage:
        """An event for `topic`, keyed by its subject (the aggregate id) unless told otherwise."""
        return cls(
            topic=topic,
            key=(key if key is not None else envelope.subject).encode(),
            value=envelope.to_json(),
            headers=[(name, value.decode()) for name, value in envelope.kafka_headers()],
        )


# After publishing, the relay announces the topics (comma-separated) it has just published to on
# this channel: engines resting while idle fetch at once (shared/engine/idle.py).
PUBLISHED_CHANNEL = "orderguard_published"


def announcement(rows: Iterable[asyncpg.Record]) -> str:
    """What a relay tells the engines it published, comma-separated: `topic:type` per known
    event type and topic, so an engine wakes only for the types it applies (Kafka topic names
    hold no `:`), and `topic` alone for a row of no known type (a dead letter keeps whatever
    `ce_type` its record had): it wakes every reader of the topic. Bounded by the known types
    and our topics, so it stays under NOTIFY's 8,000 bytes."""
    published = set()
    for row in rows:
        event_type = next((value for name, value in row["headers"] if name == "ce_type"), None)
        published.add(f"{row['topic']}:{event_type}" if event_type in REGISTRY else row["topic"])
    return ",".join(sorted(published))


def notify_channel(schema: str) -> str:
    return f"orderguard_outbox_{schema}"


# The relay leading each schema's outbox in this process, if one does. A unit of work of this
# process wakes it after committing rows of that schema, without a NOTIFY: PostgreSQL signals
# every backend listening in the database for each NOTIFY, on whatever channel, and under `up`
# ten listen (about 13.5 us of its CPU each, and the committing request waits for it:
# docs/performance.md, session 20). Rows committed by another process (a second replica, the
# API beside its worker) still NOTIFY; a wake lost to a change of leader is covered by the new
# leader's poll every `poll_interval_s`. Kept with the relay's event loop: a relay of a loop
# that ended without stopping it (a test's) must neither be woken nor stand for a leader.
_leading_here: dict[str, tuple[OutboxRelay, asyncio.AbstractEventLoop]] = {}


def relay_leading_here(schema: str) -> OutboxRelay | None:
    """The relay leading `schema`'s outbox in this process and event loop, if one does."""
    relay, loop = _leading_here.get(schema, (None, None))
    return relay if loop is asyncio.get_running_loop() else None


@dataclass(frozen=True, slots=True)
class OutboxRows:
    """Messages for one schema's outbox, written in another statement: the unit of work's last
    (a use case that stores its state and its events in one round trip, `UnitOfWork.write_last`).
    With `notify`, the statement also wakes the schema's relay, wherever it runs, on commit."""

    schema: str
    messages: list[OutboxMessage]
    notify: bool = True

    def insert(self, first: int) -> tuple[str, str, list[Any]]:
        """(a data-modifying statement for a WITH clause, an expression for the final SELECT
        that wakes the relay on commit or "" without `notify`, their parameters from ${first}
        on)."""
        return (
            "INSERT INTO outbox (topic, key, value, headers)"
            " SELECT topic, key, value, headers::jsonb"
            f" FROM unnest(${first}::text[], ${first + 1}::bytea[], ${first + 2}::bytea[],"
            f" ${first + 3}::text[]) WITH ORDINALITY AS m (topic, key, value, headers, n)"
            # In the given order: ids follow it, and the relay publishes by id.
            " ORDER BY n",
            f"pg_notify(${first + 4}, '')" if self.notify else "",
            [
                [m.topic for m in self.messages],
                [m.key for m in self.messages],
                [m.value for m in self.messages],
                [orjson.dumps([list(h) for h in m.headers]).decode() for m in self.messages],
                *([notify_channel(self.schema)] if self.notify else []),
            ],
        )


async def write_outbox(conn: Connection, schema: str, messages: Iterable[OutboxMessage]) -> int:
    """Insert messages inside the caller's transaction; the relay is woken when it commits."""
    batch = list(messages)
    if not batch:
        return 0
    # One statement, one round trip; the relay's wake-up is collapsed per transaction.
    insert, wake, args = OutboxRows(schema, batch).insert(first=1)
    await conn.execute(f"WITH written AS ({insert}) SELECT {wake}", *args)
    return len(batch)


def _lock_id(schema: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"outbox:{schema}".encode()).digest()[:8], "big", signed=True
    )


class OutboxRelay:
    """Publishes unsent outbox rows in id order with acks=all, then marks them sent.

    Only one relay per schema publishes at a time (a PostgreSQL advisory lock), so rows of
    one key reach Kafka in the order they were written however many replicas run.
    A crash between publish and mark re-publishes: consumers dedup by event id.
    A row Kafka refuses for good (too large, an invalid topic) is parked with the reason and
    counted; the rows after it are published all the same. A broker that is away (a timeout,
    no leader) fails the pass instead: nothing is parked, the rows are tried again.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        schema: str,
        batch_max: int = 2000,
        poll_interval_s: float = 1.0,
        keep_sent_s: float = 3600.0,
        linger_s: float = 0.0,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._schema = schema
        self._batch_max = batch_max
        self._poll_interval_s = poll_interval_s
        self._keep_sent_s = keep_sent_s
        self._linger_s = linger_s
        self._wake = asyncio.Event()
        self.is_leader = False

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._run_as_leader(stop)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError) as exc:
                log.warning(
                    "outbox relay lost its connection; retrying",
                    schema=self._schema,
                    error=str(exc),
                )
                self.is_leader = False
                await stopped_within(stop, self._poll_interval_s)

    async def _run_as_leader(self, stop: asyncio.Event) -> None:
        async with self._pool.acquire() as conn:
            # Wait for leadership; the lock goes with the session if this process dies.
            while not await conn.fetchval(
                "SELECT pg_try_advisory_lock($1)", _lock_id(self._schema)
            ):
                if await stopped_within(stop, self._poll_interval_s):
                    return
            self.is_leader = True
            # What this connection writes (rows marked sent or parked, old rows deleted) need not
            # wait for the WAL flush: a mark lost when PostgreSQL itself crashes only publishes
            # those rows again, which consumers drop by event id (as after a crash between
            # publish and mark). The next rows are read one fsync sooner.
            await conn.execute("SET synchronous_commit = off")
            listener = lambda *_: self._wake.set()  # noqa: E731
            await conn.add_listener(notify_channel(self._schema), listener)
            try:
                loop = asyncio.get_running_loop()
                _leading_here[self._schema] = (self, loop)
                last_cleanup = last_measured = 0.0
                published_at = -self._linger_s
                while not stop.is_set():
                    # Clear before reading, not after: a NOTIFY for a row committed after the
                    # SELECT keeps the event set, so the wait below returns at once.
                    self._wake.clear()
                    sent = await self._publish_batch(conn)
                    now = loop.time()
                    if sent:
                        published_at = now
                    if now - last_measured >= 1.0:
                        await self._measure_backlog(conn)
                        last_measured = now
                    if now - last_cleanup > 60:
                        await conn.execute(
                            "DELETE FROM outbox WHERE sent_at < now() - make_interval(secs => $1)",
                            self._keep_sent_s,
                        )
                        last_cleanup = now
                    if sent < self._batch_max:
                        # Rows that keep coming go out together, one produce request (and one
                        # new batch on each partition, which every later fetch of it lists on
                        # Tansu) every `linger_s`, not one per commit: at 200 orders/s, 20 ms
                        # took 12 % of the whole system's CPU per order (docs/performance.md,
                        # session 17). After a quiet spell the first row goes at once.
                        hold = published_at + self._linger_s - loop.time()
                        if hold > 0 and await stopped_within(stop, hold):
                            break
                        stop_task = asyncio.ensure_future(stop.wait())
                        wake_task = asyncio.ensure_future(self._wake.wait())
                        await asyncio.wait(
                            {stop_task, wake_task},
                            timeout=self._poll_interval_s,
                            return_when=asyncio.FIRST_COMPLETED,
                        )
                        stop_task.cancel()
                        wake_task.cancel()
            finally:
                self.is_leader = False
                if relay_leading_here(self._schema) is self:
                    del _leading_here[self._schema]
                await conn.remove_listener(notify_channel(self._schema), listener)
                await conn.execute("RESET synchronous_commit")
                await conn.execute("SELECT pg_advisory_unlock($1)", _lock_id(self._schema))

    async def _publish_batch(self, conn: Connection) -> int:
        """Publish one batch; returns how many rows it settled (sent or parked)."""
        rows = await conn.fetch(
            "SELECT id, topic, key, value, headers, created_at FROM outbox"
            " WHERE sent_at IS NULL AND parked_at IS NULL ORDER BY id LIMIT $1",
            self._batch_max,
        )
        if not rows:
            return 0
        parked: list[tuple[asyncpg.Record, str]] = []
        pending: list[tuple[asyncpg.Record, asyncio.Future[object]]] = []
        broker_error: KafkaError | None = None
        for row in rows:
            try:
                future = await self._producer.send(
                    row["topic"],
                    value=row["value"],
                    key=row["key"],
                    headers=[(name, value.encode()) for name, value in row["headers"]],
                )
            except UNPUBLISHABLE as exc:
                parked.append((row, _reason(exc)))
                continue
            except KafkaError as exc:
                broker_error = exc  # the rows from here on are tried again in the next pass
                break
            pending.append((row, future))
        results = await asyncio.gather(*(future for _, future in pending), return_exceptions=True)
        sent: list[asyncpg.Record] = []
        for (row, _), result in zip(pending, results, strict=True):
            if isinstance(result, UNPUBLISHABLE):
                parked.append((row, _reason(result)))
            elif isinstance(result, KafkaError):
                broker_error = broker_error or result
            elif isinstance(result, BaseException):
                raise result
            else:
                sent.append(row)
        if sent:
            # Marked sent, and what was published announced (PUBLISHED_CHANNEL).
            await conn.execute(
                "WITH sent AS (UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[]))"
                f" SELECT pg_notify('{PUBLISHED_CHANNEL}', $2)",
                [row["id"] for row in sent],
                announcement(sent),
            )
        if parked:
            await self._park(conn, parked)
        now = datetime.now(UTC)
        for topic, count in Counter(row["topic"] for row in sent).items():
            metrics.OUTBOX_PUBLISHED.labels(topic).inc(count)
        latency = metrics.OUTBOX_RELAY_LATENCY.labels(self._schema)
        for row in sent:
            latency.observe((now - row["created_at"]).total_seconds())
        if broker_error is not None:
            raise broker_error
        return len(sent) + len(parked)

    async def _park(self, conn: Connection, parked: list[tuple[asyncpg.Record, str]]) -> None:
        await conn.executemany(
            "UPDATE outbox SET parked_at = now(), parked_reason = $2 WHERE id = $1",
            [(row["id"], reason) for row, reason in parked],
        )
        for row, reason in parked:
            metrics.OUTBOX_PARKED.labels(self._schema, row["topic"]).inc()
            log.error(
                "outbox row parked: Kafka refuses it",
                schema=self._schema,
                outbox_id=row["id"],
                topic=row["topic"],
                value_bytes=len(row["value"]),
                reason=reason,
            )

    async def _measure_backlog(self, conn: Connection) -> None:
        row = await conn.fetchrow(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)"
            " FROM outbox WHERE sent_at IS NULL AND parked_at IS NULL"
        )
        assert row is not None  # an aggregate without GROUP BY returns one row
        count, oldest_age = row
        metrics.OUTBOX_BACKLOG.labels(self._schema).set(count)
        metrics.OUTBOX_OLDEST_UNSENT_AGE.labels(self._schema).set(float(max(oldest_age, 0)))
        metrics.OUTBOX_PARKED_ROWS.labels(self._schema).set(
            await conn.fetchval("SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL")
        )


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]
