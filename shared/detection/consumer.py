"""Runs a pure detector rule under the engine: state cached per partition, stored per batch.

For a timed rule (`detection.rule.TimedRule`) the consumer also keeps the rule's deadlines in
`detector_deadlines`, written in the same transaction as the state, and sweeps the ones due on
the clocks of the partitions this worker owns when the engine asks (`deadlines_due`, `sweep`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from aiokafka import TopicPartition

from orderguard.shared import metrics
from orderguard.shared.detection.config import in_force
from orderguard.shared.detection.deadlines import (
    PartitionClocks,
    as_utc,
    lock_due_deadlines,
    next_due,
    save_deadlines,
)
from orderguard.shared.detection.rule import Rule, State, TimedRule, anomaly_envelope
from orderguard.shared.engine.consumer import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.uow import UnitOfWork

if TYPE_CHECKING:
    from orderguard.shared.runtime import Runtime
    from orderguard.shared.wiring import Detectors

# Deadlines ticked per sweep transaction; more due go to the next sweep, right after.
SWEEP_MAX = 1000


def _counter(rule: str, anomaly: AnomalyDetected) -> Callable[[], None]:
    def count() -> None:
        metrics.ANOMALIES_DETECTED.labels(rule, anomaly.severity).inc()
        metrics.DETECTION_LATENCY.labels(rule).observe(
            max(0.0, (anomaly.detected_at - anomaly.event_time).total_seconds())
        )

    return count


class DetectorConsumer:
    """The engine handler of one detector rule, named `<service>.detector.<rule>`."""

    def __init__(
        self,
        rule: Rule,
        topics: Sequence[str],
        anomalies_topic: str,
        service: str,
        clocks: PartitionClocks,
    ) -> None:
        self.rule = rule
        self.name = f"{service}.detector.{rule.name}"
        self.topics = list(topics)
        self.event_types = rule.event_types
        self.clocks = clocks
        self._timed = rule if isinstance(rule, TimedRule) else None
        # A rule whose keys span partitions (e.g. per customer over events keyed by order id)
        # may see one key from several workers: its state is read fresh and locked per batch.
        self.keys_span_partitions = bool(getattr(rule, "keys_span_partitions", False))
        self._anomalies_topic = anomalies_topic
        self._source = f"/orderguard/{service}/detector/{rule.name}"
        self._cache: dict[str, State] = {}
        self._keys_by_partition: dict[TopicPartition, set[str]] = {}
        # Per partition, no deadline of it is earlier than this (None: it has none). A partition
        # missing here (just assigned, or after a rollback) is looked up in the table.
        self._next_due: dict[TopicPartition, datetime | None] = {}

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        rule = self.rule
        keyed = [(rule.key(event), event) for event in events]
        if self.keys_span_partitions:
            await self._load_locked(uow, {key for key, _ in keyed if key is not None})
        else:
            await self._load(
                uow, {key for key, _ in keyed if key is not None and key not in self._cache}
            )
        times: dict[TopicPartition, list[datetime]] = defaultdict(list)
        changed: dict[str, State] = {}
        deadlines: dict[str, tuple[TopicPartition, datetime | None]] = {}
        cache, now = self._cache, uow.now
        tp = TopicPartition("", -1)
        moments: list[datetime] = []
        keys: set[str] = set()
        for key, event in keyed:
            if event.partition != tp.partition or event.topic != tp.topic:
                # Events come partition by partition: one lookup per run, not per event.
                tp = TopicPartition(event.topic, event.partition)
                moments = times[tp]
                keys = self._keys_by_partition.setdefault(tp, set())
            moments.append(event.envelope.time)
            if key is None:
                continue
            keys.add(key)
            state = cache[key]
            new_state, anomalies = rule.apply(state, event, now)
            if new_state is not state:
                cache[key] = changed[key] = new_state
                if self._timed is not None:
                    deadlines[key] = (tp, self._deadline(new_state))
            if anomalies:
                self._publish(uow, anomalies, event.envelope)
        await self._save(uow, changed, deadlines)
        self._forget_locked_state()
        late = 0
        latest: dict[TopicPartition, datetime | None] = {}
        for tp, moments in times.items():
            late_here, latest[tp] = self.clocks.late_and_latest(tp, moments)
            late += late_here

        def advance_clocks() -> None:
            for tp, moment in latest.items():
                self.clocks.advance(tp, () if moment is None else (moment,))
            if late:
                metrics.LATE_EVENTS.labels(self.name).inc(late)

        uow.after_commit(advance_clocks)

    # -- deadlines (the engine's sweep hook) -------------------------------------------------

    def deadlines_due(
        self,
        owned: set[TopicPartition],
        polled: set[TopicPartition],
        behind: set[TopicPartition],
    ) -> set[TopicPartition]:
        """Owned partitions whose clock may have reached a deadline (no I/O)."""
        self.clocks.polled(polled)
        self.clocks.behind(behind)
        if self._timed is None:
            return set()
        due: set[TopicPartition] = set()
        for tp in owned:
            clock = self.clocks.now(tp)
            if clock is None:
                continue
            earliest = self._next_due.get(tp, clock)  # not known yet: look
            if earliest is not None and earliest <= clock:
                due.add(tp)
        return due

    async def sweep(self, uow: UnitOfWork, partitions: set[TopicPartition]) -> None:
        """Tick the keys whose deadline is due on their partition's clock, exactly once: each
        deadline row is locked, then replaced or deleted, in the sweep's transaction."""
        rule = self._timed
        if rule is None:
            return
        clocks = {tp: clock for tp in partitions if (clock := self.clocks.now(tp)) is not None}
        due = await lock_due_deadlines(uow.conn, rule.name, clocks, SWEEP_MAX)
        if self.keys_span_partitions:
            await self._load_locked(uow, {d.key for d in due})
        else:
            await self._load(uow, {d.key for d in due if d.key not in self._cache})
        changed: dict[str, State] = {}
        deadlines: dict[str, tuple[TopicPartition, datetime | None]] = {}
        for deadline in due:
            now = clocks[deadline.tp]
            self._keys_by_partition.setdefault(deadline.tp, set()).add(deadline.key)
            new_state, anomalies = rule.tick(self._cache[deadline.key], deadline.key, now)
            following = self._deadline(new_state)
            if following is not None and following <= now:
                raise ValueError(
                    f"rule {rule.name} ticked {deadline.key!r} at {now.isoformat()} and asked for"
                    f" its next tick at {following.isoformat()}, which is not later"
                )
            self._cache[deadline.key] = changed[deadline.key] = new_state
            deadlines[deadline.key] = (deadline.tp, following)
            self._publish(uow, anomalies, None)
        await self._save(uow, changed, deadlines)
        self._forget_locked_state()
        # Known now for the swept partitions: until the next write, nothing is due before this.
        self._next_due.update(await next_due(uow.conn, rule.name, clocks))

    def _deadline(self, state: State) -> datetime | None:
        assert self._timed is not None
        due = self._timed.deadline(state)
        return as_utc(due) if due is not None else None

    # -- state ---------------------------------------------------------------------------------

    def _publish(
        self, uow: UnitOfWork, anomalies: list[AnomalyDetected], cause: Envelope | None
    ) -> None:
        for anomaly in anomalies:
            uow.forward(self._anomalies_topic, anomaly_envelope(anomaly, self._source, cause))
            uow.after_commit(_counter(self.rule.name, anomaly))

    async def _save(
        self,
        uow: UnitOfWork,
        changed: dict[str, State],
        deadlines: dict[str, tuple[TopicPartition, datetime | None]],
    ) -> None:
        if changed:
            await uow.conn.execute(
                "INSERT INTO detector_state (rule, key, state)"
                " SELECT $1, * FROM unnest($2::text[], $3::jsonb[])"
                " ON CONFLICT (rule, key) DO UPDATE SET state = EXCLUDED.state, updated_at = now()",
                self.rule.name,
                list(changed),
                list(changed.values()),
            )
        if deadlines:
            await save_deadlines(uow.conn, self.rule.name, deadlines)
            for tp, due_at in deadlines.values():
                if due_at is not None and tp in self._next_due:
                    earliest = self._next_due[tp]
                    self._next_due[tp] = due_at if earliest is None else min(earliest, due_at)

    async def _load(self, uow: UnitOfWork, keys: set[str]) -> None:
        if not keys:
            return
        rows = await uow.conn.fetch(
            "SELECT key, state FROM detector_state WHERE rule = $1 AND key = ANY($2::text[])",
            self.rule.name,
            list(keys),
        )
        for row in rows:
            self._cache[row["key"]] = row["state"]
        for key in keys - {row["key"] for row in rows}:
            self._cache[key] = self.rule.initial_state()

    async def _load_locked(self, uow: UnitOfWork, keys: set[str]) -> None:
        """Read these keys' state under a row lock (created first, so a new key locks too;
        sorted, so two workers lock in the same order)."""
        if not keys:
            return
        ordered = sorted(keys)
        await uow.conn.execute(
            "INSERT INTO detector_state (rule, key, state) SELECT $1, unnest($2::text[]), $3::jsonb"
            " ON CONFLICT (rule, key) DO NOTHING",
            self.rule.name,
            ordered,
            self.rule.initial_state(),
        )
        rows = await uow.conn.fetch(
            "SELECT key, state FROM detector_state WHERE rule = $1 AND key = ANY($2::text[])"
            " ORDER BY key FOR UPDATE",
            self.rule.name,
            ordered,
        )
        for row in rows:
            self._cache[row["key"]] = row["state"]

    def _forget_locked_state(self) -> None:
        """A rule whose keys span partitions reads its state fresh under a lock every batch: what
        a batch loaded is not kept (it would only grow, one entry per customer ever seen)."""
        if self.keys_span_partitions:
            self._cache.clear()
            self._keys_by_partition.clear()

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """After a rollback (None) or a revoke: forget state and what is known of deadlines;
        a revoked partition's clock goes too (its next owner keeps its own)."""
        if partitions is None:
            self._cache.clear()
            self._keys_by_partition.clear()
            self._next_due.clear()
            return
        self.clocks.forget(partitions)
        for tp in partitions:
            self._next_due.pop(tp, None)
            for key in self._keys_by_partition.pop(tp, set()):
                self._cache.pop(key, None)


def detector_consumers(runtime: Runtime, detectors: Detectors | None) -> list[DetectorConsumer]:
    """A consumer for each of a service's rules that the detectors configuration enables, on
    the declared topics, with the deployment's event-time clocks."""
    if detectors is None:
        return []
    return [
        DetectorConsumer(
            rule,
            topics=detectors.topics,
            anomalies_topic=runtime.topics.anomalies,
            service=runtime.definition.name,
            clocks=PartitionClocks.from_settings(runtime.settings),
        )
        for rule in in_force(runtime).enabled(detectors.rules)
    ]
