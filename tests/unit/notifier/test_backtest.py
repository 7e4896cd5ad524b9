"""The backtest core: the same rules and routing tree on a simulated clock (event time)."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from testkit import T0, stock_event

from orderguard.services.notifier.backtest import (
    Backtest,
    BacktestInputError,
    LiveRecord,
    compare,
    configured_rules,
    read_events_file,
    result_json,
    run_backtest,
)
from orderguard.services.notifier.routing import load_routing, parse_routing
from orderguard.shared.detection.config import load_detector_config, rule_catalogue
from orderguard.shared.detection.rule import State, fingerprint
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.events.inventory import StockChanged

RULES = configured_rules(load_detector_config(None, rule_catalogue()))
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


def test_compare_reports_what_only_one_side_fired_and_different_routes() -> None:
    events = [stock_event(1, sku="A", n=0), stock_event(1, sku="B", n=1)]
    result = run_backtest(events, RULES, load_routing())
    a, b = (f.fingerprint for f in result.fired)
    live_a = AnomalyDetected.model_validate(
        {**shipment_anomaly("stock.low", "-", a).model_dump(), "source_event_id": "e-A-0"}
    )
    extra = AnomalyDetected.model_validate(
        {**shipment_anomaly("stock.low", "-", "zz").model_dump(), "source_event_id": "e-A-0"}
    )
    live = LiveRecord([live_a, extra], [(a, "firing", "somewhere", "risk")])
    comparison = compare(result, live, RULES)
    assert not comparison.agree
    assert comparison.fired_in_both == [("stock.low", a)]
    assert comparison.only_in_backtest == [("stock.low", b)]
    assert comparison.only_live == [("stock.low", "zz")]
    assert comparison.routed_differently == {a: (["warehouse/warehouse-stock"], ["risk/somewhere"])}
    assert result_json(result, comparison)["comparison"]["agree"] is False


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
