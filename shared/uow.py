"""The unit of work: one transaction holding a state change and the events it causes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction
from pydantic import BaseModel

from orderguard.shared import telemetry
from orderguard.shared.db import Connection
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.notifications import (
    CustomerNotice,
    NotificationRequested,
    Recipient,
)
from orderguard.shared.events.registry import REGISTRY
from orderguard.shared.outbox import OutboxMessage, OutboxRelay, OutboxRows, relay_leading_here
from orderguard.shared.tracing import child_of, current_traceparent


class Rider(Protocol):
    """Rows written with the unit of work's last statement (outbox rows, an idempotent answer)."""

    def insert(self, first: int) -> tuple[str, str, list[Any]]:
        """(a data-modifying statement for a WITH clause, an expression for the final SELECT
        or "", their parameters from ${first} on)."""
        ...


@dataclass(frozen=True, slots=True)
class Riders:
    """What rides along with the unit of work's last statement, as WITH clauses and SELECT
    expressions to append to the statement's own."""

    parts: tuple[Rider, ...]

    def clauses(self, first: int) -> tuple[str, str, list[Any]]:
        """(", ridden_0 AS (...), ..." to follow the statement's WITH clauses, ", expression,
        ..." to follow its final SELECT's, their parameters from ${first} on)."""
        clauses, selected, args = "", "", list[Any]()
        for n, part in enumerate(self.parts):
            statement, select, part_args = part.insert(first + len(args))
            clauses += f", ridden_{n} AS ({statement})"
            selected += f", {select}" if select else ""
            args += part_args
        return clauses, selected, args

    async def write(self, conn: Connection) -> None:
        """Write them alone, in one statement."""
        if self.parts:
            clauses, selected, args = self.clauses(first=1)
            await conn.execute(f"WITH {clauses[2:]} SELECT NULL{selected}", *args)


# A use case's last statement, sent at commit: `(connection, riders)` writes the riders too.
LastStatement = Callable[[Connection, Riders], Awaitable[None]]


class UnitOfWork:
    """`async with UnitOfWork(pool, schema) as uow: ...; await uow.commit()`.

    Events given to `publish` (or `forward`) are written to the outbox in the same
    transaction, so a state change and its events are stored together or not at all. Leaving
    the block without `commit()` rolls everything back.

    The transaction begins with the first statement on `uow.conn`. A use case that writes in
    one statement hands it to `write_last` instead: at commit it is sent with the outbox rows
    (and an idempotent request's answer) in it, and when nothing was sent before, it commits
    alone: one round trip, no BEGIN and no COMMIT.
    """

    conn: Connection
    # The pooled connection itself, outside the unit's transaction: for a read that must not
    # begin one (an idempotent request's stored answer, looked up before anything is done).
    session: Connection
    # The connection as `conn` hands it out: the transaction, once begun, is its `tx`.
    _begins: _BeginsOnFirstUse

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self._pool = pool
        self.schema = schema
        self.outbox: list[OutboxMessage] = []
        self.now = datetime.now(UTC)
        self._committed = False
        self._after_commit: list[Callable[[], None]] = []
        self._last: LastStatement | None = None
        self._riders: list[Rider] = []
        self._relay: OutboxRelay | None = None

    async def __aenter__(self) -> UnitOfWork:
        self._acquired = await self._pool.acquire()
        self.session = self._acquired
        self._begins = _BeginsOnFirstUse(self._acquired)
        # Typed as what it stands for: it has the statement methods use cases call.
        self.conn = cast(Connection, self._begins)
        return self

    def publish(
        self,
        topic: str,
        data: BaseModel,
        *,
        source: str,
        subject: str,
        cause: Envelope | None = None,
        time: datetime | None = None,
        key: str | None = None,
    ) -> Envelope:
        """The one way a use case publishes: `data` as its registered event type, keyed by
        `subject` (the aggregate id). The event continues the trace of the event that caused it
        (`cause`), else the trace of the work in progress."""
        envelope = REGISTRY.envelope(
            data,
            source=source,
            subject=subject,
            traceparent=child_of(cause.traceparent) if cause else current_traceparent(),
            time=time,
        )
        self.forward(topic, envelope, key)
        return envelope

    def notify_customer(
        self,
        topic: str,
        notice: CustomerNotice,
        *,
        source: str,
        customer_id: str,
        phone: str | None,
        cause: Envelope | None = None,
    ) -> Envelope:
        """The one way to ask the notifier to tell a customer something (keyed by customer)."""
        return self.publish(
            topic,
            NotificationRequested(
                request_id=notice.request_id,
                recipient=Recipient(kind="customer", id=customer_id, phone=phone),
                template=notice.template,
                params=notice.params,
                requested_at=self.now,
            ),
            source=source,
            subject=customer_id,
            cause=cause,
        )

    def forward(self, topic: str, envelope: Envelope, key: str | None = None) -> None:
        """Write an envelope made elsewhere as it is (an accepted ingest, a detector's anomaly)."""
        self.outbox.append(OutboxMessage.of(topic, envelope, key))

    def write_last(self, statement: LastStatement) -> None:
        """Send `statement` at commit, as the unit's last: it must write the `Riders` it is
        given (the outbox rows, an idempotent answer) in itself."""
        assert self._last is None, "a unit of work has one last statement"
        self._last = statement

    def ride(self, rider: Rider) -> None:
        """Write `rider` with the last statement (an idempotent request's answer)."""
        self._riders.append(rider)

    def _riding(self) -> Riders:
        outbox = []
        if self.outbox:
            # A relay leading here is woken after the commit instead of by NOTIFY.
            self._relay = relay_leading_here(self.schema)
            outbox = [OutboxRows(self.schema, self.outbox, notify=self._relay is None)]
        return Riders((*outbox, *self._riders))

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the transaction has committed (metrics, caches): never for a rollback."""
        self._after_commit.append(callback)

    async def commit(self) -> None:
        started = telemetry.now_ns()
        if self._last is not None:
            await self._last(self._acquired, self._riding())
        else:
            await self._riding().write(self._acquired)
        if self._begins.tx is not None:
            await self._begins.tx.commit()
        self._committed = True
        if self._relay is not None:
            self._relay.wake()
        if telemetry.enabled():
            telemetry.record_published(
                (
                    (message.topic, headers.get("ce_type", ""), headers.get("ce_id", ""), tp)
                    for message in self.outbox
                    if (tp := (headers := dict(message.headers)).get("traceparent"))
                ),
                started,
                telemetry.now_ns(),
            )
        for callback in self._after_commit:
            callback()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._begins.tx is not None and not self._committed:
                await self._begins.tx.rollback()
        finally:
            await self._pool.release(self._acquired)


class _BeginsOnFirstUse:
    """`uow.conn`: the unit's connection, whose first statement begins the transaction.

    It holds the connection and the transaction, not the unit: a reference back would make a
    cycle, and each unit, with all a use case hung on it (the order, its events, closures),
    would wait for the garbage collector instead of going when the request does. Under load
    that made the door's collections pause it for 35-250 ms (docs/performance.md, session 16).
    """

    __slots__ = ("_conn", "tx")

    def __init__(self, conn: PoolConnectionProxy) -> None:
        self._conn = conn
        self.tx: Transaction | None = None

    async def _begun(self) -> PoolConnectionProxy:
        if self.tx is None:
            tx = self._conn.transaction()
            await tx.start()
            self.tx = tx
        return self._conn

    async def execute(self, query: str, *args: object, timeout: float | None = None) -> str:
        return await (await self._begun()).execute(query, *args, timeout=timeout)

    async def executemany(self, command: str, args: Any, *, timeout: float | None = None) -> None:
        await (await self._begun()).executemany(command, args, timeout=timeout)

    async def fetch(self, query: str, *args: object, timeout: float | None = None) -> list[Any]:
        return await (await self._begun()).fetch(query, *args, timeout=timeout)

    async def fetchrow(self, query: str, *args: object, timeout: float | None = None) -> Any:
        return await (await self._begun()).fetchrow(query, *args, timeout=timeout)

    async def fetchval(
        self, query: str, *args: object, column: int = 0, timeout: float | None = None
    ) -> Any:
        return await (await self._begun()).fetchval(query, *args, column=column, timeout=timeout)
