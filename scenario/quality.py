"""Detection quality: what the system raised against what the scenario injected. Pure.

Every injected anomaly (a `Label`) must be raised exactly once — one distinct fingerprint of
its rule whose labels contain the label's identity — between its due time and its window end
plus a tolerance. Every firing the labels do not explain is a false alarm. Resolutions
(status `resolved`: recovered, resumed, responded late) are not alarms and are not counted.
`Figures` sums reports (several seeds) per kind and overall.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# A raise this much before its due time is still on time: scaled windows are floats, and the
# label and the rule round them to microseconds separately.
EARLY_SLACK_S = 0.001

# Order holds that are the intake's detection of a bad address or phone (order.held.v1).
INTAKE_HOLD_REASONS = frozenset({"address_incomplete", "phone_invalid"})


@dataclass(frozen=True)
class Label:
    """One injected anomaly, as played: when it was injected and when it is due."""

    id: str
    kind: str
    rule: str
    match: dict[str, str]
    injected_at: datetime
    due_at: datetime  # when the system should raise it (after a silence, at a deadline, ...)
    window_end: datetime  # due_at plus the tolerance the player allowed
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "rule": self.rule,
            "match": self.match,
            "injected_at": self.injected_at.isoformat(),
            "due_at": self.due_at.isoformat(),
            "window_end": self.window_end.isoformat(),
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Label:
        return cls(
            id=data["id"],
            kind=data["kind"],
            rule=data["rule"],
            match=dict(data["match"]),
            injected_at=datetime.fromisoformat(data["injected_at"]),
            due_at=datetime.fromisoformat(data["due_at"]),
            window_end=datetime.fromisoformat(data["window_end"]),
            note=data.get("note", ""),
        )


@dataclass(frozen=True)
class Observation:
    """Something the system raised: an anomaly on anomalies.detected, or an intake hold."""

    rule: str
    fingerprint: str
    labels: dict[str, str]
    detected_at: datetime
    status: str = "firing"


@dataclass(frozen=True)
class Outcome:
    label: Label
    verdict: str  # hit, missed, late, early, duplicated (duplicated wins over early and late)
    raised: int  # distinct fingerprints that match
    delay_s: float | None  # first matching detection minus due_at


@dataclass
class Report:
    outcomes: list[Outcome]
    false_alarms: list[Observation]
    tolerance_s: float
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def injected(self) -> int:
        return len(self.outcomes)

    @property
    def hits(self) -> int:
        return sum(outcome.verdict == "hit" for outcome in self.outcomes)

    @property
    def recall(self) -> float:
        return self.hits / self.injected if self.outcomes else 1.0

    @property
    def delays(self) -> list[float]:
        return sorted(o.delay_s for o in self.outcomes if o.delay_s is not None)

    def delay_percentile(self, p: float) -> float | None:
        return percentile(self.delays, p)

    @property
    def ok(self) -> bool:
        return self.recall == 1.0 and not self.false_alarms

    def lines(self) -> list[str]:
        """The report in words, for a terminal."""
        out = [
            f"injected {self.injected}, raised exactly once in time {self.hits}:"
            f" recall {self.recall:.3f}; false alarms {len(self.false_alarms)}",
        ]
        if self.delays:
            p50, p95 = self.delay_percentile(50), self.delay_percentile(95)
            out.append(
                f"detection delay after due (s): p50 {p50:.2f}  p95 {p95:.2f}"
                f"  max {self.delays[-1]:.2f}"
                + (f"  (extra tolerance {self.tolerance_s:g})" if self.tolerance_s else "")
            )
        out.append(f"{'kind':<25}{'injected':>9}{'hit':>6}{'missed':>8}{'late':>6}{'dup':>5}")
        for kind, counts in sorted(self.by_kind.items()):
            out.append(
                f"{kind:<25}{sum(counts.values()):>9}{counts['hit']:>6}{counts['missed']:>8}"
                f"{counts['late'] + counts['early']:>6}{counts['duplicated']:>5}"
            )
        for outcome in self.outcomes:
            if outcome.verdict != "hit":
                out.append(
                    f"  {outcome.verdict}: {outcome.label.id} {outcome.label.kind}"
                    f" {outcome.label.match} (raised {outcome.raised}, delay {outcome.delay_s})"
                )
        for rule, count in Counter(a.rule for a in self.false_alarms).most_common():
            out.append(f"  false alarms of {rule}: {count}")
        for alarm in self.false_alarms[:10]:
            out.append(f"    {alarm.rule} {alarm.labels} at {alarm.detected_at.isoformat()}")
        return out


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted `values` (None when empty)."""
    if not values:
        return None
    rank = max(1, math.ceil(p / 100 * len(values)))
    return values[min(rank, len(values)) - 1]


def matches(label: Label, observation: Observation) -> bool:
    return observation.rule == label.rule and all(
        observation.labels.get(key) == value for key, value in label.match.items()
    )


def _distance(label: Label, observation: Observation) -> float:
    """Seconds between a raise and the label's window (0 inside it)."""
    if observation.detected_at < label.injected_at:
        return (label.injected_at - observation.detected_at).total_seconds()
    return max(0.0, (observation.detected_at - label.window_end).total_seconds())


def compare(
    labels: list[Label], observations: list[Observation], tolerance_s: float = 0.0
) -> Report:
    """Each label against the firing observations; the firings no label explains.

    A firing is assigned to the label it matches (rule and identity) whose window it is
    nearest to, so injections that share an identity (bursts of one channel, say) are judged
    one by one; a firing no label matches is a false alarm."""
    firing = [o for o in observations if o.status == "firing"]
    assigned: dict[int, list[Observation]] = {i: [] for i in range(len(labels))}
    false_alarms = []
    for observation in firing:
        candidates = [i for i, label in enumerate(labels) if matches(label, observation)]
        if not candidates:
            false_alarms.append(observation)
            continue
        nearest = min(candidates, key=lambda i: (_distance(labels[i], observation), i))
        assigned[nearest].append(observation)
    outcomes = []
    for i, label in enumerate(labels):
        fingerprints: dict[str, Observation] = {}
        for observation in sorted(assigned[i], key=lambda o: o.detected_at):
            fingerprints.setdefault(observation.fingerprint, observation)
        raised = len(fingerprints)
        if not raised:
            outcomes.append(Outcome(label, "missed", 0, None))
            continue
        first = min(fingerprints.values(), key=lambda o: o.detected_at)
        delay = (first.detected_at - label.due_at).total_seconds()
        if raised > 1:
            verdict = "duplicated"
        elif (first.detected_at - label.window_end).total_seconds() > tolerance_s:
            verdict = "late"
        elif -delay > tolerance_s + EARLY_SLACK_S:
            verdict = "early"  # before it was due: something else raised it, or too soon
        else:
            verdict = "hit"
        outcomes.append(Outcome(label, verdict, raised, delay))
    by_kind: dict[str, Counter[str]] = {}
    for outcome in outcomes:
        by_kind.setdefault(outcome.label.kind, Counter())[outcome.verdict] += 1
    return Report(outcomes, false_alarms, tolerance_s, by_kind)


def observation_of_anomaly(data: dict[str, Any]) -> Observation:
    """From the data of an anomaly.detected.v1."""
    return Observation(
        rule=data["rule"],
        fingerprint=data["fingerprint"],
        labels={k: str(v) for k, v in data.get("labels", {}).items()},
        detected_at=datetime.fromisoformat(data["detected_at"]),
        status=data.get("status", "firing"),
    )


def observation_of_hold(data: dict[str, Any]) -> Observation | None:
    """From the data of an order.held.v1: an intake detection (bad address, bad phone) or None."""
    if data.get("reason") not in INTAKE_HOLD_REASONS:
        return None
    return Observation(
        rule="order.held",
        fingerprint=f"order.held:{data['order_id']}:{data['reason']}",
        labels={
            "order_id": data["order_id"],
            "customer_id": data["customer_id"],
            "channel": data["channel"],
            "reason": data["reason"],
        },
        detected_at=datetime.fromisoformat(data["held_at"]),
    )


# kind of the labels a rule raises (a false alarm is counted under it), from the reports' labels
def _kind_of_rules(reports: list[Report]) -> dict[str, str]:
    return {o.label.rule: o.label.kind for report in reports for o in report.outcomes}


@dataclass
class KindFigures:
    """One kind (or all) over several reports."""

    injected: int = 0
    hits: int = 0
    missed: int = 0
    late: int = 0
    early: int = 0  # first raise before the due time (also when duplicated)
    duplicated: int = 0  # injections raised under more than one fingerprint
    false_alarms: int = 0
    delays: list[float] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.hits / self.injected if self.injected else 1.0

    def add(self, outcome: Outcome, tolerance_s: float) -> None:
        self.injected += 1
        self.hits += outcome.verdict == "hit"
        self.missed += outcome.verdict == "missed"
        self.late += outcome.verdict == "late"
        self.duplicated += outcome.verdict == "duplicated"
        if outcome.delay_s is not None:
            self.early += -outcome.delay_s > tolerance_s + EARLY_SLACK_S
            self.delays.append(outcome.delay_s)


@dataclass
class Figures:
    """Reports of several runs (seeds) summed per kind and overall; delays after due pooled."""

    kinds: dict[str, KindFigures]
    overall: KindFigures

    @classmethod
    def of(cls, reports: list[Report]) -> Figures:
        kinds: dict[str, KindFigures] = {}
        overall = KindFigures()
        kind_of = _kind_of_rules(reports)
        for report in reports:
            for outcome in report.outcomes:
                for figures in (kinds.setdefault(outcome.label.kind, KindFigures()), overall):
                    figures.add(outcome, report.tolerance_s)
            for alarm in report.false_alarms:
                kind = kind_of.get(alarm.rule, alarm.rule)
                kinds.setdefault(kind, KindFigures()).false_alarms += 1
                overall.false_alarms += 1
        for figures in [*kinds.values(), overall]:
            figures.delays.sort()
        return cls(dict(sorted(kinds.items())), overall)

    @property
    def ok(self) -> bool:
        o = self.overall
        return o.hits == o.injected and not (o.false_alarms or o.early or o.duplicated)

    HEADER = (
        f"{'kind':<25}{'inj':>5}{'recall':>8}{'miss':>5}{'dup':>5}{'early':>6}{'late':>5}"
        f"{'false':>7}{'p50':>7}{'p95':>7}{'max':>7}"
    )

    @staticmethod
    def row(name: str, f: KindFigures) -> str:
        delays = (
            f"{percentile(f.delays, 50) or 0:>7.2f}{percentile(f.delays, 95) or 0:>7.2f}"
            f"{f.delays[-1]:>7.2f}"
            if f.delays
            else ""
        )
        return (
            f"{name:<25}{f.injected:>5}{f.recall:>8.3f}{f.missed:>5}{f.duplicated:>5}"
            f"{f.early:>6}{f.late:>5}{f.false_alarms:>7}{delays}"
        )

    def lines(self) -> list[str]:
        """A table: per kind and overall, recall, misses, duplicates, early and late raises,
        false alarms, delay after due p50/p95/max (seconds)."""
        return [
            self.HEADER,
            *(self.row(kind, f) for kind, f in self.kinds.items()),
            self.row("overall", self.overall),
        ]
