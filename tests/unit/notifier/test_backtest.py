"""The backtest core: the same rules and routing tree on a simulated clock (event time)."""

from __future__ import annotations

import json
import textwrap
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from testkit import T0, stock_event

from orderguard.cli.services_registry import STREAM_RULES, rule_catalogue
from orderguard.services.notifier.backtest import (
    Backtest,
    BacktestInputError,
    Fired,
    LiveRecord,
    compare,
    merge_by_time,
    read_events_file,
    result_json,
    run_backtest,
)
from orderguard.services.notifier.router.silence import Silence
from orderguard.services.notifier.routing import Matcher, load_routing, parse_routing
from orderguard.shared.detection.config import load_detector_config
from orderguard.shared.detection.rule import State, fingerprint
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.events.inventory import StockChanged

S10 = timedelta(seconds=10)
S30 = timedelta(seconds=30)
RULES = load_detector_config(None, rule_catalogue()).enabled(STREAM_RULES)
GROUPED = parse_routing(
    textwrap.dedent(
        """
        route:
          queue: customer_service
          routes:
            - name: stock
              matchers: ['rule="stock.low"']
              queue: warehouse
              group_by: [warehouse]
              group_wait: 30s
              group_interval: 5m
              repeat_interval: 7m
        inhibit_rules:
          - source_matchers: ['rule="shipment.carrier_outage"']
            target_matchers: ['rule="shipment.stalled"']
            equal: [carrier]
        """
    ),
    "t.yaml",
)


def test_stock_events_fire_and_route_like_the_live_pipeline() -> None:
    events = [
        stock_event(8, sku="A", n=0),
        stock_event(2, sku="A", n=1),  # fires once per episode
        stock_event(3, sku="B", n=2),
        stock_event(9, sku="C", n=3),  # above its threshold of 5
    ]
    result = run_backtest(events, RULES, load_routing())
    assert result.events == 4 and result.skipped == 0
    assert [(f.rule, f.at) for f in result.fired] == [
        ("stock.low", T0 + timedelta(seconds=1)),
        ("stock.low", T0 + timedelta(seconds=2)),
    ]
    assert {(r.queue, r.route, r.group_key) for r in result.routed} == {
        ("warehouse", "warehouse-stock", 'warehouse-stock:{warehouse="main"}')
    }
    assert len(result.routed) == 2


def test_group_timers_run_on_the_simulated_clock_with_repeat_exact() -> None:
    events = [
        stock_event(1, sku="A", n=0),
        stock_event(1, sku="B", n=10),  # inside group_wait: the first flush carries both
        stock_event(1, sku="C", n=60),  # after the first flush: waits for group_interval
    ]
    result = run_backtest(events, RULES, GROUPED, until=T0 + timedelta(minutes=13))
    flushes = [(r.at - T0, r.fingerprint[:6]) for r in result.routed]
    at = [moment for moment, _ in flushes]
    assert at == [
        timedelta(seconds=30),
        timedelta(seconds=30),
        timedelta(minutes=5, seconds=30),  # group_interval after the first flush
        # nothing changed since: every firing member again, exactly 7m later (not 10m)
        timedelta(minutes=12, seconds=30),
        timedelta(minutes=12, seconds=30),
        timedelta(minutes=12, seconds=30),
    ]


def shipment_anomaly(rule: str, carrier: str, fp: str, status: str = "firing") -> AnomalyDetected:
    return AnomalyDetected(
        rule=rule,
        fingerprint=fp,
        status=status,  # type: ignore[arg-type]
        severity="P3",
        team="logistics",
        labels={"carrier": carrier},
        summary="s",
        event_time=T0,
        detected_at=T0,
        source_event_id="e",
    )


def test_inhibited_targets_are_held_and_routed_when_the_source_resolves() -> None:
    backtest = Backtest([], GROUPED)
    backtest.route(shipment_anomaly("shipment.carrier_outage", "sf", "outage"), T0)
    backtest.route(shipment_anomaly("shipment.stalled", "sf", "stall-sf"), T0)
    backtest.route(shipment_anomaly("shipment.stalled", "dhl", "stall-dhl"), T0)
    result = backtest.result
    assert [(h.fingerprint, h.reason, h.by) for h in result.held] == [
        ("stall-sf", "inhibited", "outage")
    ]
    assert [r.fingerprint for r in result.routed] == ["outage", "stall-dhl"]
    later = T0 + timedelta(minutes=3)
    backtest.route(shipment_anomaly("shipment.carrier_outage", "sf", "outage", "resolved"), later)
    assert [(r.fingerprint, r.status, r.at) for r in result.routed[2:]] == [
        ("outage", "resolved", later),
        ("stall-sf", "firing", later),
    ]


class Silent:
    """A timed rule for the test: fires when a SKU has had no event for 10 minutes."""

    name = "stock.silent"
    event_types = frozenset({"inventory.stock_changed.v1"})

    def key(self, event: Event) -> str | None:
        assert isinstance(event.data, StockChanged)
        return event.data.sku

    def initial_state(self) -> State:
        return {}

    def apply(self, state: State, event: Event, now: datetime) -> tuple[State, list]:  # type: ignore[type-arg]
        return {"due": (event.envelope.time + timedelta(minutes=10)).isoformat()}, []

    def deadline(self, state: State) -> datetime | None:
        return datetime.fromisoformat(state["due"]) if "due" in state else None

    def tick(self, state: State, key: str, now: datetime) -> tuple[State, list]:  # type: ignore[type-arg]
        anomaly = shipment_anomaly(
            "stock.silent", "-", fingerprint("stock.silent", {"sku": key}, now.isoformat())
        )
        return {}, [anomaly]


def test_timed_rule_deadlines_fire_as_the_simulated_clock_passes_them() -> None:
    events = [
        stock_event(50, sku="A", n=0),
        stock_event(50, sku="B", n=300),
        stock_event(50, sku="A", n=400),
    ]
    result = run_backtest(events, [Silent()], GROUPED, until=T0 + timedelta(hours=1))
    # B's deadline (5m + 10m) passes; A's first deadline was pushed to 6m40s + 10m by its event.
    assert [f.at - T0 for f in result.fired] == [
        timedelta(minutes=15),
        timedelta(minutes=16, seconds=40),
    ]


def live_copy(fired: Fired, **changes: object) -> AnomalyDetected:
    """What the live detector published for a transition the backtest made."""
    return AnomalyDetected.model_validate(
        {
            **shipment_anomaly(fired.rule, "-", fired.fingerprint, fired.status).model_dump(),
            "event_time": fired.event_time,
            "source_event_id": fired.source_event_id,
            **changes,
        }
    )


def test_compare_reports_each_transition_only_one_side_made_and_different_routes() -> None:
    events = [
        stock_event(1, sku="A", n=0),  # A fires
        stock_event(1, sku="B", n=1),  # B fires
        stock_event(9, sku="A", n=2),  # A recovers
    ]
    result = run_backtest(events, RULES, load_routing())
    a_fired, b_fired, a_recovered = result.fired
    a = a_fired.fingerprint
    assert (a_recovered.fingerprint, a_recovered.status) == (a, "resolved")
    stock = ["warehouse/warehouse-stock"]
    agreeing = LiveRecord(
        [live_copy(f) for f in result.fired] + [live_copy(a_fired)],  # a copy collapses
        [(r.fingerprint, r.status, r.route, r.queue) for r in result.routed],
    )
    comparison = compare(result, agreeing, RULES)
    assert comparison.agree, comparison.as_json()
    assert [(t.fingerprint, t.status) for t in comparison.in_both] == sorted(
        (f.fingerprint, f.status) for f in result.fired
    )

    # Live: A recovered at another time, an anomaly the backtest never raised, A routed elsewhere.
    extra = live_copy(b_fired, fingerprint="zz")
    late = live_copy(a_recovered, event_time=a_recovered.event_time + timedelta(seconds=5))
    live = LiveRecord(
        [live_copy(a_fired), live_copy(b_fired), late, extra],
        [(a, "firing", "somewhere", "risk"), (a, "resolved", "warehouse-stock", "warehouse")],
    )
    comparison = compare(result, live, RULES)
    assert not comparison.agree
    assert [(t.rule, t.fingerprint, t.status) for t in comparison.in_both] == sorted(
        [("stock.low", a, "firing"), ("stock.low", b_fired.fingerprint, "firing")],
        key=lambda step: step[1],
    )
    assert [(t.fingerprint, t.status, t.at) for t in comparison.only_in_backtest] == [
        (a, "resolved", a_recovered.event_time)
    ]
    assert [(t.fingerprint, t.status, t.at) for t in comparison.only_live] == sorted(
        [(a, "resolved", late.event_time), ("zz", "firing", b_fired.event_time)]
    )
    assert comparison.routed_differently == {
        (a, "firing"): (stock, ["risk/somewhere"]),
        (b_fired.fingerprint, "firing"): (stock, []),
    }
    assert result_json(result, comparison)["comparison"]["agree"] is False


def test_partitions_merge_by_time_each_in_its_own_order() -> None:
    def at(second: int, name: str) -> Envelope:
        return Envelope(
            type="x.v1", source="/t", subject=name, data={}, time=T0 + timedelta(seconds=second)
        )

    # Partition 1's writers stamped its second record earlier than its first: the engine
    # applies them in offset order, so the replay does too.
    one = [at(5, "p1-a"), at(3, "p1-b")]
    two = [at(1, "p2-a"), at(4, "p2-b")]
    assert [e.subject for e in merge_by_time([one, two])] == ["p2-a", "p2-b", "p1-a", "p1-b"]


def test_a_file_of_envelopes_is_replayed(tmp_path: Path) -> None:
    file = tmp_path / "events.jsonl"
    lines = [stock_event(1, sku="A", n=0).envelope.to_json().decode(), ""]
    other = Envelope(type="nobody.knows.v1", source="/x", subject="x", data={})
    lines.append(other.to_json().decode())
    file.write_text("\n".join(lines))
    events = read_events_file(file)
    assert [e.type for e in events] == ["inventory.stock_changed.v1"]
    assert json.dumps(result_json(run_backtest(events, RULES, load_routing()), None))
    file.write_text(lines[0] + "\n{not json\n")
    with pytest.raises(BacktestInputError, match=r"events.jsonl:2: not an event envelope"):
        read_events_file(file)


STALLS_GROUPED = parse_routing(
    textwrap.dedent(
        """
        route:
          queue: logistics
          routes:
            - name: stalls
              matchers: ['rule="shipment.stalled"']
              group_by: [carrier]
              group_wait: 30s
        inhibit_rules:
          - source_matchers: ['rule="shipment.carrier_outage"']
            target_matchers: ['rule="shipment.stalled"']
            equal: [carrier]
        """
    ),
    "t.yaml",
)


def test_a_source_firing_after_its_target_takes_it_out_of_its_waiting_group() -> None:
    backtest = Backtest([], STALLS_GROUPED)
    backtest.route(shipment_anomaly("shipment.stalled", "sf", "stall-sf"), T0)
    backtest.route(shipment_anomaly("shipment.carrier_outage", "sf", "outage"), T0 + S10)
    backtest.finish(T0 + 2 * S30)
    result = backtest.result
    assert [(r.fingerprint, r.status) for r in result.routed] == [("outage", "firing")]
    assert [(h.fingerprint, h.reason, h.by) for h in result.held] == [
        ("stall-sf", "inhibited", "outage")
    ]
    resolved_at = T0 + 3 * S30
    backtest.route(
        shipment_anomaly("shipment.carrier_outage", "sf", "outage", "resolved"), resolved_at
    )
    backtest.finish(resolved_at + S30)
    assert [(r.fingerprint, r.status, r.at) for r in result.routed[1:]] == [
        ("outage", "resolved", resolved_at),
        ("stall-sf", "firing", resolved_at + S30),  # a new group, its own group_wait
    ]


def test_what_a_silence_held_back_is_routed_when_the_clock_passes_its_end() -> None:
    muted = Silence(
        id=uuid.uuid4(),
        matchers=(Matcher.parse('carrier="sf"'),),
        author="ops",
        comment="carrier maintenance",
        starts_at=T0,
        ends_at=T0 + 2 * S30,
        created_at=T0,
    )
    backtest = Backtest([], load_routing(), silences=[muted])
    backtest.route(shipment_anomaly("shipment.stalled", "sf", "stall-sf"), T0 + S10)
    assert [h.reason for h in backtest.result.held] == ["silenced"]
    assert backtest.result.routed == []
    backtest.finish(T0 + 3 * S30)
    assert [(r.fingerprint, r.at) for r in backtest.result.routed] == [("stall-sf", T0 + 2 * S30)]
