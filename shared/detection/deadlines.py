"""The deadline index of timed detector rules: an event-time clock per partition, and the
`detector_deadlines` table the engine sweeps.

A partition's clock is the latest event time applied from it, minus the allowed lateness. Once
the partition has delivered no records for `idle_after` of wall time and holds none this worker
has not applied, the clock follows the wall clock instead (minus the lateness too), so that
silence is detected while nothing arrives. A partition with records waiting (its consumer is
behind) is not silent, however long since it last delivered: its clock waits for their event
times, so a backlog never passes for silence. A clock never goes back. An event whose time is
behind its partition's clock is late: still applied, and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from operator import le

from aiokafka import TopicPartition

from orderguard.shared.db import Connection
from orderguard.shared.settings import Settings


def _utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Event times without an offset are taken as UTC (they cannot be compared otherwise)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(slots=True)
class _Partition:
    last_record_at: datetime  # wall time
    latest_event: datetime | None = None
    clock: datetime | None = None  # the furthest the clock has been: it never goes back


class PartitionClocks:
    """The detector clock of each partition a worker owns."""

    def __init__(
        self,
        allowed_lateness: timedelta,
        idle_after: timedelta,
        wall: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.allowed_lateness = allowed_lateness
        self.idle_after = idle_after
        self._wall = wall
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._behind: frozenset[TopicPartition] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> PartitionClocks:
        return cls(
            timedelta(seconds=settings.detector_allowed_lateness_s),
            timedelta(seconds=settings.detector_idle_after_s),
        )

    def now(self, tp: TopicPartition) -> datetime | None:
        """The partition's clock; None before it has one (no event yet, and not idle yet).

        A partition seen for the first time starts its idle timer now.
        """
        partition = self._partition(tp)
        wall = self._wall()
        candidates = [partition.clock]
        if partition.latest_event is not None:
            candidates.append(partition.latest_event - self.allowed_lateness)
        if wall - partition.last_record_at >= self.idle_after and tp not in self._behind:
            candidates.append(wall - self.allowed_lateness)
        known = [moment for moment in candidates if moment is not None]
        partition.clock = max(known) if known else None
        return partition.clock

    def count_late(self, tp: TopicPartition, event_times: Iterable[datetime]) -> int:
        """How many of these events, in partition order, are behind the clock (nothing moves)."""
        return self.late_and_latest(tp, list(event_times))[0]

    def late_and_latest(
        self, tp: TopicPartition, event_times: Sequence[datetime]
    ) -> tuple[int, datetime | None]:
        """`count_late` of these events, and the latest of their times (as UTC): what
        `advance` takes after they are applied. Nothing moves."""
        if not event_times:
            return 0, None
        clock = self.now(tp)
        # The usual batch: times in order, none behind the clock. Checked in C (a Python loop
        # per event cost 2-3 us here); a naive time meets an aware one as a TypeError.
        try:
            if (clock is None or event_times[0] >= clock) and all(
                map(le, event_times, islice(event_times, 1, None))
            ):
                return 0, as_utc(event_times[-1])
        except TypeError:
            pass
        # An event is late when behind max(the clock, the latest time before it - lateness).
        # One not behind the latest before it is never behind the second term: each event
        # costs two comparisons, not a subtraction and a max.
        lateness = self.allowed_lateness
        latest: datetime | None = None
        late = 0
        for moment in map(as_utc, event_times):
            if latest is None or moment >= latest:
                latest = moment
                if clock is not None and moment < clock:
                    late += 1
            elif (clock is not None and moment < clock) or moment < latest - lateness:
                late += 1
        return late, latest

    def advance(self, tp: TopicPartition, event_times: Iterable[datetime]) -> None:
        """Events from this partition were applied: the clock moves with their times."""
        partition = self._partition(tp)
        latest = max(map(as_utc, event_times), default=None)
        if latest is not None and (
            partition.latest_event is None or latest > partition.latest_event
        ):
            partition.latest_event = latest
        partition.last_record_at = self._wall()

    def polled(self, partitions: Iterable[TopicPartition]) -> None:
        """These partitions just delivered records (of any type): they are not idle."""
        wall = self._wall()
        for tp in partitions:
            self._partition(tp).last_record_at = wall

    def behind(self, partitions: Iterable[TopicPartition]) -> None:
        """These partitions hold records not applied yet (all the others are caught up): they
        are not idle, whatever the time since they last delivered."""
        self._behind = frozenset(partitions)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions this worker no longer owns; their next owner starts its own clocks."""
        for tp in partitions:
            self._partitions.pop(tp, None)

    def _partition(self, tp: TopicPartition) -> _Partition:
        partition = self._partitions.get(tp)
        if partition is None:
            partition = self._partitions[tp] = _Partition(last_record_at=self._wall())
        return partition


# -- the detector_deadlines table -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deadline:
    key: str
    tp: TopicPartition
    due_at: datetime


async def save_deadlines(
    conn: Connection, rule: str, deadlines: Mapping[str, tuple[TopicPartition, datetime | None]]
) -> None:
    """Set (or, for None, clear) the deadline of each key, on the key's partition."""
    armed = [
        (rule, key, tp.topic, tp.partition, due_at)
        for key, (tp, due_at) in deadlines.items()
        if due_at is not None
    ]
    cleared = [key for key, (_, due_at) in deadlines.items() if due_at is None]
    if armed:
        await conn.executemany(
            "INSERT INTO detector_deadlines (rule, key, topic, partition, due_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (rule, key) DO UPDATE"
            " SET topic = EXCLUDED.topic, partition = EXCLUDED.partition, due_at = EXCLUDED.due_at",
            armed,
        )
    if cleared:
        await conn.execute(
            "DELETE FROM detector_deadlines WHERE rule = $1 AND key = ANY($2::text[])",
            rule,
            cleared,
        )


async def lock_due_deadlines(
    conn: Connection, rule: str, clocks: Mapping[TopicPartition, datetime], limit: int
) -> list[Deadline]:
    """The deadlines due on these partitions' clocks, earliest first, locked until commit."""
    if not clocks:
        return []
    rows = await conn.fetch(
        "SELECT d.key, d.topic, d.partition, d.due_at FROM detector_deadlines d"
        " JOIN unnest($2::text[], $3::int[], $4::timestamptz[]) AS c(topic, partition, clock)"
        " ON d.topic = c.topic AND d.partition = c.partition AND d.due_at <= c.clock"
        " WHERE d.rule = $1 ORDER BY d.due_at LIMIT $5 FOR UPDATE OF d",
        rule,
        [tp.topic for tp in clocks],
        [tp.partition for tp in clocks],
        list(clocks.values()),
        limit,
    )
    return [
        Deadline(row["key"], TopicPartition(row["topic"], row["partition"]), row["due_at"])
        for row in rows
    ]


async def next_due(
    conn: Connection, rule: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, datetime | None]:
    """The earliest deadline of each partition (None: it has none)."""
    wanted = list(partitions)
    rows = await conn.fetch(
        "SELECT d.topic, d.partition, min(d.due_at) AS due_at FROM detector_deadlines d"
        " JOIN unnest($2::text[], $3::int[]) AS p(topic, partition)"
        " ON d.topic = p.topic AND d.partition = p.partition"
        " WHERE d.rule = $1 GROUP BY d.topic, d.partition",
        rule,
        [tp.topic for tp in wanted],
        [tp.partition for tp in wanted],
    )
    found: dict[TopicPartition, datetime | None] = dict.fromkeys(wanted)
    for row in rows:
        found[TopicPartition(row["topic"], row["partition"])] = row["due_at"]
    return found
