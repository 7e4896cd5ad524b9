"""In-memory adapters for use-case unit tests: a unit of work that keeps its outbox in a list,
and fake repositories (one module per service) with the functions the use cases call."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from pydantic import BaseModel

from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.registry import REGISTRY
from orderguard.shared.outbox import OutboxMessage
from orderguard.shared.uow import Riders, UnitOfWork

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


class InMemoryUnitOfWork(UnitOfWork):
    """The real `publish` / `notify_customer` / `forward`, with no database: what a use case
    published stays in `outbox`; `conn` is None (the fake repositories ignore it)."""

    def __init__(self, now: datetime = NOW) -> None:
        self.schema = "memory"
        self.outbox: list[OutboxMessage] = []
        self.now = now
        self.conn = None  # type: ignore[assignment]
        self._committed = False
        self._after_commit: list[Callable[[], None]] = []
        self._last = None
        self._riders = []

    async def __aenter__(self) -> InMemoryUnitOfWork:
        return self

    async def commit(self) -> None:
        if self._last is not None:  # a use case's last statement, to the fake repositories
            await self._last(self.conn, Riders(()))
        self._committed = True
        for callback in self._after_commit:
            callback()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    @property
    def published(self) -> list[tuple[str, Envelope]]:
        """(topic, envelope) of every message written, in order."""
        return [(m.topic, Envelope.from_json(m.value)) for m in self.outbox]

    def types(self, topic: str | None = None) -> list[str]:
        return [e.type for t, e in self.published if topic is None or t == topic]

    def events(self, model: type[Any]) -> list[Any]:
        """The data of every published event of this model, parsed."""
        wanted = REGISTRY.type_of(model)
        return [model.model_validate(e.data) for _, e in self.published if e.type == wanted]

    def take(self) -> list[tuple[str, Envelope]]:
        """What was published so far, emptying the outbox (for the next step of a test)."""
        published = self.published
        self.outbox.clear()
        return published


def one(items: list[BaseModel] | list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


def incoming(
    data: BaseModel,
    subject: str,
    *,
    time: datetime = NOW,
    topic: str = "in",
    traceparent: str | None = None,
) -> Event:
    """An event as the engine hands it to a use case (its envelope, its typed data)."""
    envelope = REGISTRY.envelope(
        data, source="/test", subject=subject, traceparent=traceparent, time=time
    )
    return Event(envelope=envelope, data=data, topic=topic, partition=0, offset=0)
