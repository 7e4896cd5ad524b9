"""What a service's worker runs, declared as data in its `bootstrap.py`: one table per service.

- `UseCaseConsumer`: one handler of the engine: the topics and event types it reads and the
  use case (`handlers.py`) that applies each batch of them;
- `Detectors`: the service's detector rules (its `rules.RULES`) and the topics they read;
- `ScheduledJob` (`shared/scheduler.py`): work that comes due with wall time.

The runtime builds the jobs, and ONE engine for all the handlers, from the table: one Kafka
consumer group, `worker_group(service)`, reading the union of their topics; each handler is
handed the events of its own topics and types, in the table's order (use-case consumers, then
detectors). Nothing else starts a consumer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from orderguard.shared.detection.rule import Rule
from orderguard.shared.engine import Event
from orderguard.shared.scheduler import ScheduledJob
from orderguard.shared.uow import UnitOfWork

# A use case applying a batch of fresh events inside the batch's transaction.
ApplyBatch = Callable[[UnitOfWork, list[Event]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class UseCaseConsumer:
    """One row of the table: name, topics, event types, use case (an engine `BatchConsumer`,
    as a `DetectorConsumer` is).

    The name (`<service>.<what-it-does>`) is what timelines, logs and dead letters' errors
    call this handler; offsets and applied event ids are the worker's group's. Use cases read
    (and lock) what they touch in each batch and cache nothing, so there is nothing to forget
    after a revoke or a rollback.
    """

    name: str
    topics: Sequence[str]
    event_types: frozenset[str]
    apply: ApplyBatch

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        await self.apply(uow, events)

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached (see the class docstring)."""


@dataclass(frozen=True, slots=True)
class Detectors:
    """The service's detector rules (the `RULES` of its `rules.py`, each built with its
    configuration) and the topics they read; rules the detectors file disables do not run."""

    rules: Sequence[Callable[[Any], Rule]]
    topics: Sequence[str]


def worker_group(service: str) -> str:
    """The one consumer group of a service's worker: `<service>.worker`."""
    return f"{service}.worker"


@dataclass(frozen=True, slots=True)
class Workers:
    """Everything a service's worker runs."""

    consumers: Sequence[UseCaseConsumer] = ()
    detectors: Detectors | None = None
    jobs: Sequence[ScheduledJob] = ()
