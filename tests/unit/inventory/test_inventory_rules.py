"""inventory.negative_available and inventory.inconsistent as pure rules with an injected clock:
firing, not firing, resolving, re-arming; params from the detectors configuration."""

from __future__ import annotations

from datetime import timedelta

from testkit import T0

from orderguard.cli.services_registry import rule_catalogue
from orderguard.services.inventory.rules import InventoryInconsistent, NegativeAvailable
from orderguard.shared.detection.config import RuleConfig, parse_detector_config
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.events.inventory import StockChanged, StockCounted


def changed(on_hand: int, reserved: int, n: int = 0, warehouse: str = "main") -> Event:
    data = StockChanged(
        sku="SKU-1",
        warehouse=warehouse,
        on_hand=on_hand,
        reserved=reserved,
        available=on_hand - reserved,
        cause="adjusted",
        movement="adjusted",
    )
    envelope = Envelope(
        id=f"c-{n}",
        type="inventory.stock_changed.v1",
        source="/t",
        subject="SKU-1",
        time=T0 + timedelta(seconds=n),
        data=data.model_dump(mode="json"),
    )
    return Event(envelope, data, "inventory.events", 0, n)


def counted(
    counted_on_hand: int,
    expected: int,
    ledger: int | None = None,
    reserved: int = 0,
    ledger_reserved: int | None = None,
    count_id: str = "cnt-1",
    warehouse: str = "main",
) -> Event:
    data = StockCounted(
        count_id=count_id,
        sku="SKU-1",
        warehouse=warehouse,
        counted_on_hand=counted_on_hand,
        expected_on_hand=expected,
        ledger_on_hand=expected if ledger is None else ledger,
        reserved=reserved,
        ledger_reserved=reserved if ledger_reserved is None else ledger_reserved,
        counted_by="clerk-7",
        counted_at=T0,
    )
    envelope = Envelope(
        id=f"e-{count_id}",
        type="inventory.counted.v1",
        source="/t",
        subject="SKU-1",
        time=T0,
        data=data.model_dump(mode="json"),
    )
    return Event(envelope, data, "inventory.events", 0, 0)


def negative(tolerance: int = 0) -> NegativeAvailable:
    return NegativeAvailable(RuleConfig.of(NegativeAvailable, tolerance=tolerance))


def run_negative(
    rule: NegativeAvailable, levels: list[tuple[int, int]]
) -> list[list[AnomalyDetected]]:
    state, out = rule.initial_state(), []
    for n, (on_hand, reserved) in enumerate(levels):
        state, anomalies = rule.apply(
            state, changed(on_hand, reserved, n), T0 + timedelta(seconds=n)
        )
        out.append(anomalies)
    return out


def test_negative_available_fires_once_resolves_and_re_arms() -> None:
    out = run_negative(negative(), [(10, 4), (3, 4), (2, 4), (4, 4), (5, 4), (1, 4)])
    assert [[a.status for a in found] for found in out] == [
        [],
        ["firing"],
        [],  # still the same episode
        ["resolved"],  # available 0: not below zero any more
        [],
        ["firing"],  # a new episode
    ]
    fired, resolved, again = out[1][0], out[3][0], out[5][0]
    assert fired.rule == "inventory.negative_available" and fired.team == "warehouse"
    assert fired.severity == "P2" and "available is -1" in fired.summary
    assert resolved.fingerprint == fired.fingerprint and resolved.status == "resolved"
    assert again.fingerprint != fired.fingerprint
    assert fired.detected_at == T0 + timedelta(seconds=1), "the injected clock"
    assert fired.event_time == T0 + timedelta(seconds=1)


def test_negative_available_within_tolerance_is_quiet() -> None:
    assert run_negative(negative(tolerance=2), [(3, 5), (2, 4)]) == [[], []]
    assert [len(f) for f in run_negative(negative(tolerance=2), [(2, 5)])] == [1]


def test_the_same_episode_has_the_same_fingerprint_whoever_computes_it() -> None:
    rule = negative()
    _, first = rule.apply(rule.initial_state(), changed(1, 3), T0)
    _, later = rule.apply(rule.initial_state(), changed(0, 9), T0 + timedelta(hours=2))
    assert first[0].fingerprint == later[0].fingerprint


def inconsistent(tolerance: int = 0) -> InventoryInconsistent:
    return InventoryInconsistent(RuleConfig.of(InventoryInconsistent, tolerance=tolerance))


def test_a_count_that_matches_the_balance_and_the_ledger_is_quiet() -> None:
    rule = inconsistent()
    assert rule.apply(rule.initial_state(), counted(12, expected=12), T0)[1] == []


def test_a_count_off_by_more_than_the_tolerance_fires_with_both_numbers() -> None:
    rule = inconsistent(tolerance=1)
    assert rule.apply({}, counted(11, expected=12), T0)[1] == [], "within tolerance"
    [anomaly] = rule.apply({}, counted(9, expected=12), T0)[1]
    assert anomaly.rule == "inventory.inconsistent" and anomaly.status == "firing"
    assert anomaly.labels == {
        "sku": "SKU-1",
        "warehouse": "main",
        "check": "count",
        "severity": "P3",
        "team": "warehouse",
    }
    assert "counted 9" in anomaly.summary and "expected 12" in anomaly.summary
    assert "difference -3" in anomaly.summary


def test_a_stock_row_that_disagrees_with_its_ledger_fires_even_when_the_count_agrees() -> None:
    rule = inconsistent()
    [anomaly] = rule.apply({}, counted(12, expected=12, ledger=10), T0)[1]
    assert anomaly.labels["check"] == "ledger"
    assert "says 12 on hand" in anomaly.summary and "sums to 10 on hand" in anomaly.summary
    [reserved] = rule.apply({}, counted(12, expected=12, reserved=3, ledger_reserved=1), T0)[1]
    assert "3 reserved" in reserved.summary and "1 reserved" in reserved.summary


def test_both_checks_fire_separately_and_each_count_is_its_own_anomaly() -> None:
    rule = inconsistent()
    both = rule.apply({}, counted(5, expected=12, ledger=10), T0)[1]
    assert sorted(a.labels["check"] for a in both) == ["count", "ledger"]
    again = rule.apply({}, counted(5, expected=12, ledger=10), T0 + timedelta(minutes=5))[1]
    assert [a.fingerprint for a in again] == [a.fingerprint for a in both], "redelivered: same"
    other = rule.apply({}, counted(5, expected=12, ledger=10, count_id="cnt-2"), T0)[1]
    assert not {a.fingerprint for a in other} & {a.fingerprint for a in both}


def test_tolerance_per_warehouse_comes_from_the_detectors_file() -> None:
    config = parse_detector_config(
        "rules:\n  inventory.inconsistent:\n    params: {tolerance: 0}\n    overrides:\n"
        "      - {match: {warehouse: bulk}, params: {tolerance: 5, severity: P4}}\n"
        "  inventory.negative_available:\n    params: {tolerance: 1}\n",
        "test",
        rule_catalogue(),
    )
    rule = InventoryInconsistent(config.rule(InventoryInconsistent.name))
    assert rule.apply({}, counted(8, expected=12, warehouse="bulk"), T0)[1] == []
    [main] = rule.apply({}, counted(8, expected=12, warehouse="main"), T0)[1]
    [bulk] = rule.apply({}, counted(1, expected=12, warehouse="bulk"), T0)[1]
    assert (main.severity, bulk.severity) == ("P3", "P4")
    negative_rule = NegativeAvailable(config.rule(NegativeAvailable.name))
    assert negative_rule.apply(negative_rule.initial_state(), changed(3, 4), T0)[1] == []


def test_a_late_count_is_judged_on_its_own_numbers_and_stamped_now() -> None:
    rule = inconsistent()
    late = counted(3, expected=12, count_id="cnt-old")  # its event time: T0
    now = T0 + timedelta(days=2)
    [anomaly] = rule.apply({}, late, now)[1]
    assert (anomaly.event_time, anomaly.detected_at) == (T0, now)


def test_other_event_types_and_keys_are_kept_apart() -> None:
    rule = negative()
    assert rule.key(changed(1, 0, warehouse="north")) != rule.key(changed(1, 0))
    assert "inventory.counted.v1" not in rule.event_types
    assert inconsistent().event_types == frozenset({"inventory.counted.v1"})
