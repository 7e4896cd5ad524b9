"""The unit of work: one transaction holding a state change and the events it causes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType

import asyncpg
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
from orderguard.shared.outbox import OutboxMessage, OutboxRows, write_outbox
from orderguard.shared.tracing import child_of, current_traceparent


class UnitOfWork:
    """`async with UnitOfWork(pool, schema) as uow: ...; await uow.commit()`.

    Events given to `publish` (or `forward`) are written to the outbox in the same
    transaction, so a state change and its events are stored together or not at all. Leaving
    the block without `commit()` rolls everything back.
    """

    conn: Connection

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self._pool = pool
        self.schema = schema
        self.outbox: list[OutboxMessage] = []
        self._outbox_taken = 0  # outbox[:_outbox_taken] is written by a use case's statement
        self.now = datetime.now(UTC)
        self._committed = False
        self._after_commit: list[Callable[[], None]] = []

    async def __aenter__(self) -> UnitOfWork:
        self._acquired = await self._pool.acquire()
        self.conn = self._acquired
        self._tx = self.conn.transaction()
        await self._tx.start()
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

    def take_outbox(self) -> OutboxRows:
        """What was published so far, for the caller to write in its own statement (with the
        state change: one round trip less); `commit` writes only what is published after."""
        taken = OutboxRows(self.schema, self.outbox[self._outbox_taken :])
        self._outbox_taken = len(self.outbox)
        return taken

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the transaction has committed (metrics, caches): never for a rollback."""
        self._after_commit.append(callback)

    async def commit(self) -> None:
        started = telemetry.now_ns()
        await write_outbox(self.conn, self.schema, self.outbox[self._outbox_taken :])
        await self._tx.commit()
        self._committed = True
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
            if not self._committed:
                await self._tx.rollback()
        finally:
            await self._pool.release(self._acquired)
