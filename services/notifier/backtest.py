"""Backtests: replay recorded events through the detector rules and the routing tree with a
simulated clock, and compare with what fired live.

It lives with the notifier because it needs both halves of the pipeline: the detector rules
(every service's, configured by the detectors file: the caller builds them) and the router —
the very routing pipeline the live router runs (`router/pipeline.py`), over a `MemoryStore`
instead of tables. The core (`Backtest`, `compare`) is pure and used by
tests; `read_topic_range` / `read_events_file` read the input; `orderguard backtest` prints.

The simulated clock is event time: before each event it moves to the event's time minus the
allowed lateness (never back), and the timed rules' deadlines and the route groups' flushes
and the silences' ends that it passes fire in time order — like the engine, whose
per-partition clocks do the same.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from orderguard.services.notifier.router.group import Group
from orderguard.services.notifier.router.memory_store import MemoryStore, run_now
from orderguard.services.notifier.router.pipeline import Arrival, RoutingPipeline
from orderguard.services.notifier.router.route import Destination
from orderguard.services.notifier.router.silence import Silence, Silenced
from orderguard.services.notifier.router.store import AnomalyState, Hold
from orderguard.services.notifier.routing import RouteMatch, RoutingTree
from orderguard.shared.detection.deadlines import as_utc
from orderguard.shared.detection.rule import Rule, State, TimedRule
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events import REGISTRY, UnknownEventType
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.settings import Settings


@dataclass(frozen=True, slots=True)
class Fired:
    rule: str
    fingerprint: str
    status: str
    severity: str
    at: datetime  # simulated clock when it fired
    source_event_id: str
    event_time: datetime  # the anomaly's own time, as live has it


@dataclass(frozen=True, slots=True)
class Routed:
    fingerprint: str
    rule: str
    status: str
    route: str
    queue: str
    group_key: str | None
    severity: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Held:
    fingerprint: str
    rule: str
    reason: str  # silenced, inhibited
    by: str  # the silence id or the inhibiting fingerprint


@dataclass
class BacktestResult:
    events: int = 0
    skipped: int = 0  # events no rule looks at
    fired: list[Fired] = field(default_factory=list)
    routed: list[Routed] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)
    event_ids: set[str] = field(default_factory=set)
    event_types: set[str] = field(default_factory=set)
    first_event_at: datetime | None = None
    last_event_at: datetime | None = None  # or `until`, when the clock ran on to it
    clock: datetime | None = None


class Backtest:
    """One replay: feed events in order with `replay`, then `finish`; read `result`."""

    def __init__(
        self,
        rules: Sequence[Rule],
        tree: RoutingTree,
        allowed_lateness: timedelta = timedelta(),
        silences: Sequence[Silence] = (),
    ) -> None:
        self.rules = list(rules)
        self.tree = tree
        self.allowed_lateness = allowed_lateness
        self.result = BacktestResult()
        self._states: dict[tuple[str, str], State] = {}
        self._deadlines: list[tuple[datetime, int, str, str]] = []  # due, seq, rule, key
        self._due: dict[tuple[str, str], datetime] = {}
        self._seq = itertools.count()
        self._by_name = {rule.name: rule for rule in self.rules}
        self.store = MemoryStore(silences)  # the router's memory

    # -- the clock -------------------------------------------------------------------------

    def _advance(self, to: datetime) -> None:
        clock = self.result.clock
        if clock is not None and to <= clock:
            return
        while True:
            nxt = self._next_timer(to)
            if nxt is None:
                break
            self.result.clock = max(self.result.clock or nxt, nxt)
            self._fire_timers(nxt)
        self.result.clock = to

    def _next_timer(self, limit: datetime) -> datetime | None:
        candidates = []
        while (
            self._deadlines
            and self._due.get((self._deadlines[0][2], self._deadlines[0][3]))
            != self._deadlines[0][0]
        ):
            heapq.heappop(self._deadlines)  # superseded
        if self._deadlines:
            candidates.append(self._deadlines[0][0])
        router_due = self.store.next_due()
        if router_due is not None:
            candidates.append(router_due)
        due = min(candidates, default=None)
        return due if due is not None and due <= limit else None

    def _fire_timers(self, now: datetime) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            due, _, rule_name, key = heapq.heappop(self._deadlines)
            if self._due.get((rule_name, key)) != due:
                continue
            del self._due[(rule_name, key)]
            rule = self._by_name[rule_name]
            assert isinstance(rule, TimedRule)
            state, anomalies = rule.tick(self._states[(rule_name, key)], key, now)
            self._set_state(rule, key, state)
            for anomaly in anomalies:
                self._detected(anomaly, now)
        self._run_router_timers(now)

    # -- detection -------------------------------------------------------------------------

    def replay(self, event: Event) -> None:
        result = self.result
        result.events += 1
        result.event_ids.add(event.id)
        result.event_types.add(event.type)
        at = as_utc(event.envelope.time)
        if result.first_event_at is None or at < result.first_event_at:
            result.first_event_at = at
        if result.last_event_at is None or at > result.last_event_at:
            result.last_event_at = at
        self._advance(at - self.allowed_lateness)
        looked = False
        for rule in self.rules:
            if event.type not in rule.event_types:
                continue
            key = rule.key(event)
            if key is None:
                continue
            looked = True
            state = self._states.get((rule.name, key))
            if state is None:
                state = rule.initial_state()
            new_state, anomalies = rule.apply(state, event, at)
            if new_state is not state:
                self._set_state(rule, key, new_state)
            for anomaly in anomalies:
                self._detected(anomaly, at)
        if not looked:
            result.skipped += 1

    def finish(self, until: datetime | None = None) -> BacktestResult:
        """Let the clock run on to `until` (deadlines and flushes due by then fire)."""
        if until is not None:
            self._advance(as_utc(until))
            last = self.result.last_event_at
            self.result.last_event_at = max(as_utc(until), last) if last else as_utc(until)
        return self.result

    def _set_state(self, rule: Rule, key: str, state: State) -> None:
        self._states[(rule.name, key)] = state
        if isinstance(rule, TimedRule):
            due = rule.deadline(state)
            if due is None:
                self._due.pop((rule.name, key), None)
            else:
                due = as_utc(due)
                self._due[(rule.name, key)] = due
                heapq.heappush(self._deadlines, (due, next(self._seq), rule.name, key))

    # -- routing: the live pipeline over memory ---------------------------------------------

    def _detected(self, anomaly: AnomalyDetected, now: datetime) -> None:
        self.result.fired.append(
            Fired(
                anomaly.rule,
                anomaly.fingerprint,
                anomaly.status,
                anomaly.severity,
                now,
                anomaly.source_event_id,
                as_utc(anomaly.event_time),
            )
        )
        self.route(anomaly, now)

    def _pipeline(self, now: datetime) -> RoutingPipeline:
        return RoutingPipeline(self.store, self.tree, self._outlet(now), now)

    def _outlet(self, now: datetime) -> _Recorder:
        return _Recorder(self.result, now)

    def route(self, anomaly: AnomalyDetected, now: datetime) -> None:
        """The router's decision for an anomaly arriving at `now`."""
        run_now(self._pipeline(now).arrive([Arrival(anomaly, anomaly.source_event_id)]))

    def _run_router_timers(self, now: datetime) -> None:
        pipeline = self._pipeline(now)
        while run_now(pipeline.flush_due_groups(FLUSHES_PER_STEP)) == FLUSHES_PER_STEP:
            pass
        while run_now(pipeline.release_silenced(FLUSHES_PER_STEP)) == FLUSHES_PER_STEP:
            pass


# Groups flushed (or silenced anomalies released) per pipeline call while the clock stands.
FLUSHES_PER_STEP = 1000


class _Recorder:
    """The pipeline's outlet in a backtest: what would have been routed and held back."""

    def __init__(self, result: BacktestResult, now: datetime) -> None:
        self.result = result
        self.now = now

    def publish(
        self, anomaly: AnomalyDetected, to: Destination, traceparent: str | None, key: str
    ) -> None:
        self.result.routed.append(
            Routed(
                anomaly.fingerprint,
                anomaly.rule,
                anomaly.status,
                to.route,
                to.queue,
                to.group_key,
                to.severity,
                self.now,
            )
        )

    def held(self, state: AnomalyState, hold: Hold, after_routing: bool) -> None:
        if isinstance(hold, Silenced):
            held = Held(state.fingerprint, state.anomaly.rule, "silenced", str(hold.silence.id))
        else:
            held = Held(state.fingerprint, state.anomaly.rule, "inhibited", hold.source_fingerprint)
        self.result.held.append(held)

    def count(self, queue: str, outcome: str) -> None:
        pass

    def released(self, state: AnomalyState, reason: str) -> None:
        pass

    def routed(
        self, anomaly: AnomalyDetected, matches: Sequence[RouteMatch], event_id: str
    ) -> None:
        pass

    def flushed(self, group: Group, kind: str, published: int) -> None:
        pass

    def note(self, what: str, **fields: Any) -> None:
        pass


def run_backtest(
    events: Iterable[Event],
    rules: Sequence[Rule],
    tree: RoutingTree,
    *,
    allowed_lateness: timedelta = timedelta(),
    until: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> BacktestResult:
    backtest = Backtest(rules, tree, allowed_lateness)
    for count, event in enumerate(events, start=1):
        backtest.replay(event)
        if progress is not None:
            progress(count)
    return backtest.finish(until)


# -- comparison with what fired live -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveRecord:
    """What fired live: anomalies from anomalies.detected, routes from queues.<team>."""

    anomalies: list[AnomalyDetected]
    routed: list[tuple[str, str, str, str]]  # fingerprint, status, route, queue


@dataclass(frozen=True, slots=True, order=True)
class Transition:
    """One step of an anomaly: it fired, or it resolved, at its event time."""

    fingerprint: str
    status: str
    at: datetime
    rule: str

    def as_json(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "fingerprint": self.fingerprint,
            "status": self.status,
            "at": self.at.isoformat(),
        }


@dataclass
class Comparison:
    """Every transition (fingerprint, status, time) of the backtest against live, and where
    each went; they agree when both sides made the same transitions and routed them alike."""

    in_both: list[Transition] = field(default_factory=list)
    only_in_backtest: list[Transition] = field(default_factory=list)
    only_live: list[Transition] = field(default_factory=list)
    # (fingerprint, status) -> (backtest routes, live routes) where they differ; "queue/route"
    routed_differently: dict[tuple[str, str], tuple[list[str], list[str]]] = field(
        default_factory=dict
    )

    @property
    def agree(self) -> bool:
        return not (self.only_in_backtest or self.only_live or self.routed_differently)

    def as_json(self) -> dict[str, Any]:
        return {
            "agree": self.agree,
            "in_both": [t.as_json() for t in self.in_both],
            "only_in_backtest": [t.as_json() for t in self.only_in_backtest],
            "only_live": [t.as_json() for t in self.only_live],
            "routed_differently": [
                {"fingerprint": fp, "status": status, "backtest": mine, "live": theirs}
                for (fp, status), (mine, theirs) in self.routed_differently.items()
            ],
        }


def compare(result: BacktestResult, live: LiveRecord, rules: Sequence[Rule]) -> Comparison:
    """Every transition of the backtest against those live over the same input, and their
    routes. A live transition counts when one of the replayed events caused it, or when it is
    of a timed rule the replay fed and its time lies within what the replay's clock covered
    (a deadline that passed): live deadlines beyond the replay's clock are not compared (let
    the replay run on with `until`)."""
    timed = {
        rule.name
        for rule in rules
        if isinstance(rule, TimedRule) and rule.event_types & result.event_types
    }
    start, end = result.first_event_at, result.clock

    def in_range(anomaly: AnomalyDetected) -> bool:
        if anomaly.source_event_id in result.event_ids:
            return True
        at = as_utc(anomaly.event_time)
        return (
            anomaly.rule in timed and start is not None and end is not None and start <= at <= end
        )

    # Several copies of one transition (redelivery, a second driver) are one transition.
    live_steps = {
        Transition(a.fingerprint, a.status, as_utc(a.event_time), a.rule)
        for a in live.anomalies
        if in_range(a)
    }
    back_steps = {Transition(f.fingerprint, f.status, f.event_time, f.rule) for f in result.fired}
    comparison = Comparison(
        in_both=sorted(back_steps & live_steps),
        only_in_backtest=sorted(back_steps - live_steps),
        only_live=sorted(live_steps - back_steps),
    )
    compared = {(t.fingerprint, t.status) for t in comparison.in_both}
    back_routes: dict[tuple[str, str], set[str]] = {}
    for routed in result.routed:
        back_routes.setdefault((routed.fingerprint, routed.status), set()).add(
            f"{routed.queue}/{routed.route}"
        )
    live_routes: dict[tuple[str, str], set[str]] = {}
    for fingerprint, status, route, queue in live.routed:
        live_routes.setdefault((fingerprint, status), set()).add(f"{queue}/{route}")
    for step in sorted(compared):
        mine, theirs = back_routes.get(step, set()), live_routes.get(step, set())
        if mine != theirs:
            comparison.routed_differently[step] = (sorted(mine), sorted(theirs))
    return comparison


def live_record(envelopes: Iterable[Envelope]) -> LiveRecord:
    """Split recorded envelopes into detected anomalies and routed ones."""
    anomalies: list[AnomalyDetected] = []
    routed: list[tuple[str, str, str, str]] = []
    for envelope in envelopes:
        if envelope.type == "anomaly.detected.v1":
            anomalies.append(AnomalyDetected.model_validate(envelope.data))
        elif envelope.type == "anomaly.routed.v1":
            data = envelope.data
            routed.append(
                (
                    data["anomaly"]["fingerprint"],
                    data["anomaly"].get("status", "firing"),
                    data["route"],
                    data["queue"],
                )
            )
    return LiveRecord(anomalies, routed)


# -- input ----------------------------------------------------------------------------------


class BacktestInputError(ValueError):
    """The events to replay cannot be read; the message says where and why."""


def decode(
    envelope: Envelope, topic: str = "", partition: int = 0, offset: int = 0
) -> Event | None:
    """A typed event; None for a type no model is registered for (nothing to replay)."""
    try:
        data = REGISTRY.parse(envelope)
    except UnknownEventType:
        return None
    return Event(envelope, data, topic, partition, offset)


def merge_by_time(streams: Sequence[Sequence[Envelope]]) -> list[Envelope]:
    """Streams (partitions, topics) merged by event time, each kept in its own order: the
    engine applies a partition in offset order even where event times go back (two writers
    of one key), so a replay that sorted them would make other transitions."""
    return list(heapq.merge(*streams, key=lambda envelope: as_utc(envelope.time)))


def read_envelopes_file(path: Path) -> Iterator[Envelope]:
    """JSON lines of CloudEvents envelopes (blank lines skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BacktestInputError(f"{path} cannot be read: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield Envelope.from_json(line.encode())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BacktestInputError(
                f"{path}:{number}: not an event envelope ({where}: {first['msg']})"
            ) from None


def read_events_file(path: Path) -> list[Event]:
    events = []
    for offset, envelope in enumerate(read_envelopes_file(path)):
        event = decode(envelope, str(path), 0, offset)
        if event is not None:
            events.append(event)
    return events


async def read_topic_range(
    settings: Settings,
    topic: str,
    *,
    from_offset: int | None = None,
    to_offset: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Envelope]:
    """Records of every partition of `topic`: offsets [from_offset, to_offset) on each
    partition, or record times [since, until). Each partition in its own order (as the
    engine applies it, whatever the event times say); partitions merged by event time."""
    # "earliest": a position reset racing our seek lands before the range, never after it.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        consumer.assign(partitions)
        since_ms = int(as_utc(since).timestamp() * 1000) if since is not None else None
        until_ms = int(as_utc(until).timestamp() * 1000) if until is not None else None
        starts, ends = await _offset_bounds(
            consumer, partitions, since_ms, from_offset, to_offset, settings.kafka_embedded_compat
        )
        total = sum(max(0, ends[tp] - starts[tp]) for tp in partitions)
        records: dict[TopicPartition, list[Envelope]] = {tp: [] for tp in partitions}
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        # Bounds the caller set; the rest of each partition is read up to its high watermark
        # as the fetches report it (ListOffsets alone can lag on some brokers).
        bounded = to_offset is not None
        done: set[TopicPartition] = set()
        read = 0
        while len(done) < len(partitions):
            batch = await consumer.getmany(
                *(tp for tp in partitions if tp not in done), timeout_ms=200, max_records=5000
            )
            for tp, tp_records in batch.items():
                for record in tp_records:
                    if record.offset < starts[tp] or not _in_time(
                        record.timestamp, since_ms, until_ms
                    ):
                        continue
                    if bounded and record.offset >= ends[tp]:
                        done.add(tp)
                        break
                    if record.value is not None:
                        # Not an envelope: the live consumers dead-lettered it too.
                        with contextlib.suppress(ValidationError):
                            records[tp].append(Envelope.from_json(record.value))
                    read += 1
            if progress is not None and batch:
                progress(read, total)
            if not batch:
                done |= await _caught_up(consumer, partitions, starts, ends if bounded else None)
        return merge_by_time([records[tp] for tp in partitions])
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    numbers = consumer.partitions_for_topic(topic)
    if not numbers:
        await consumer._client.force_metadata_update()
        numbers = consumer.partitions_for_topic(topic)
    if not numbers:
        raise BacktestInputError(f"topic {topic} does not exist or has no partitions")
    return [TopicPartition(topic, p) for p in sorted(numbers)]


async def _offset_bounds(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    since_ms: int | None,
    from_offset: int | None,
    to_offset: int | None,
    embedded_compat: bool,
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """Where reading starts on each partition, and where the range ends (end offsets)."""
    starts = await consumer.beginning_offsets(partitions)
    ends = await consumer.end_offsets(partitions)
    if since_ms is not None and not embedded_compat:
        # A hint to skip ahead; the records' own times decide (Tansu answers these
        # look-ups unreliably, so there every record is read and filtered).
        found = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
        starts = {tp: (found[tp].offset if found[tp] else ends[tp]) for tp in partitions}
    if from_offset is not None:
        starts = {tp: max(starts[tp], from_offset) for tp in partitions}
    if to_offset is not None:
        ends = {tp: min(ends[tp], to_offset) for tp in partitions}
    return starts, ends


def _in_time(timestamp: int, since_ms: int | None, until_ms: int | None) -> bool:
    return (since_ms is None or timestamp >= since_ms) and (
        until_ms is None or timestamp < until_ms
    )


async def _caught_up(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    starts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int] | None,
) -> set[TopicPartition]:
    """After an empty fetch: the partitions read up to their end (the caller's bound, else the
    high watermark the fetches reported)."""
    caught_up = set()
    for tp in partitions:
        highwater = consumer.highwater(tp)
        end = ends[tp] if ends is not None else highwater
        if end is None or highwater is None:
            continue
        if starts[tp] >= min(end, highwater) or await consumer.position(tp) >= min(end, highwater):
            caught_up.add(tp)
    return caught_up


def result_json(result: BacktestResult, comparison: Comparison | None) -> dict[str, Any]:
    def plain(item: Any) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(item).items()}

    return {
        "events": result.events,
        "events_no_rule_looked_at": result.skipped,
        "clock": result.clock.isoformat() if result.clock else None,
        "fired": [plain(f) for f in result.fired],
        "routed": [plain(r) for r in result.routed],
        "held": [plain(h) for h in result.held],
        "comparison": comparison.as_json() if comparison is not None else None,
    }
