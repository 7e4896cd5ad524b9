"""Drive a pure detector rule as the engine does, without I/O, for unit tests of late and
out-of-order events.

One partition; each event is a batch of its own, in arrival order: it is counted late when its
time is behind the partition's clock (the engine's own `PartitionClocks`: latest event time
minus the allowed lateness, never back), applied, then the clock moves and every deadline it
reached is ticked, earliest first — the sweep after a batch. `finish` lets the clock run on to
a moment (a quiet partition following the wall clock) and ticks what comes due.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiokafka import TopicPartition

from orderguard.shared.detection.deadlines import PartitionClocks, as_utc
from orderguard.shared.detection.rule import Rule, State, TimedRule
from orderguard.shared.engine import Event
from orderguard.shared.events.anomalies import AnomalyDetected

TP = TopicPartition("events", 0)


@dataclass
class Replay:
    rule: Rule
    allowed_lateness: timedelta = timedelta()
    states: dict[str, State] = field(default_factory=dict)
    raised: list[AnomalyDetected] = field(default_factory=list)
    late: int = 0

    def __post_init__(self) -> None:
        # The wall clock never runs here: the partition is never idle, its clock is event time.
        wall = datetime(2000, 1, 1, tzinfo=UTC)
        self.clocks = PartitionClocks(self.allowed_lateness, timedelta(days=36500), lambda: wall)

    def feed(self, events: Iterable[Event]) -> Replay:
        for event in events:
            moment = as_utc(event.envelope.time)
            self.late += self.clocks.count_late(TP, [moment])
            key = self.rule.key(event)
            if key is not None:
                state = self.states.get(key, self.rule.initial_state())
                self.states[key], anomalies = self.rule.apply(state, event, moment)
                self.raised += anomalies
            self.clocks.advance(TP, [moment])
            self._tick(self.clocks.now(TP))
        return self

    def finish(self, until: datetime) -> Replay:
        self._tick(until)
        return self

    def _tick(self, now: datetime | None) -> None:
        if now is None or not isinstance(self.rule, TimedRule):
            return
        rule = self.rule
        while True:
            due = sorted(
                (deadline, key)
                for key, state in self.states.items()
                if (deadline := rule.deadline(state)) is not None and as_utc(deadline) <= now
            )
            if not due:
                return
            _, key = due[0]
            self.states[key], anomalies = rule.tick(self.states[key], key, now)
            self.raised += anomalies

    def transitions(self) -> list[tuple[str, str, str]]:
        """What was raised, as the router sees it: (rule, fingerprint, status), in order."""
        return [(a.rule, a.fingerprint, a.status) for a in self.raised]


def arrivals_within(events: list[Event], lateness: timedelta, seed: int) -> list[Event]:
    """The events in a random arrival order where none is more than `lateness` behind the
    newest that arrived before it (out of order, but within the allowed lateness)."""
    rng = random.Random(seed)
    remaining = sorted(events, key=lambda event: as_utc(event.envelope.time))
    order = []
    while remaining:
        earliest = as_utc(remaining[0].envelope.time)
        allowed = [e for e in remaining if as_utc(e.envelope.time) <= earliest + lateness]
        pick = rng.choice(allowed)
        remaining.remove(pick)
        order.append(pick)
    return order


def same_transitions(first: Replay, second: Replay) -> bool:
    """The same anomalies and resolutions: per fingerprint, the same statuses in the same
    order (across fingerprints the order may differ)."""

    def by_fingerprint(replay: Replay) -> dict[str, list[tuple[str, str]]]:
        found: dict[str, list[tuple[str, str]]] = {}
        for rule, fp, status in replay.transitions():
            found.setdefault(fp, []).append((rule, status))
        return found

    return by_fingerprint(first) == by_fingerprint(second)
