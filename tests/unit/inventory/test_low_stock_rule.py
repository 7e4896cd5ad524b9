"""The stock.low rule as a pure function: fires once per episode, re-arms only after recovery."""

from __future__ import annotations

from datetime import timedelta

from testkit import T0, stock_event

from orderguard.services.inventory.rules import LowStock
from orderguard.shared.detection.config import RuleConfig
from orderguard.shared.events.anomalies import AnomalyDetected


def low_stock(threshold: int, hysteresis: int = 0) -> LowStock:
    return LowStock(RuleConfig.of(LowStock, threshold=threshold, hysteresis=hysteresis))


def published(
    rule: LowStock, availabilities: list[int], threshold: int | None = 5
) -> list[list[AnomalyDetected]]:
    state = rule.initial_state()
    out = []
    for n, available in enumerate(availabilities):
        state, anomalies = rule.apply(
            state, stock_event(available, threshold, n=n), T0 + timedelta(seconds=n, milliseconds=5)
        )
        out.append(anomalies)
    return out


def run(rule: LowStock, availabilities: list[int], threshold: int | None = 5) -> list[list[str]]:
    """The fingerprints of the firing anomalies, per event."""
    return [
        [a.fingerprint for a in anomalies if a.status == "firing"]
        for anomalies in published(rule, availabilities, threshold)
    ]


def test_fires_when_available_falls_below_threshold() -> None:
    fired = run(low_stock(10), [8, 6, 4])
    assert [len(f) for f in fired] == [0, 0, 1]


def test_does_not_fire_at_the_threshold_itself() -> None:
    assert run(low_stock(10), [5, 5]) == [[], []]


def test_fires_once_until_recovered_above_threshold() -> None:
    fired = run(low_stock(10), [4, 3, 5, 2, 6, 1])
    # 4 fires; 3 is the same episode; 5 is not above 5 so still low; 6 re-arms; 1 fires again
    assert [len(f) for f in fired] == [1, 0, 0, 0, 0, 1]
    assert fired[0] != fired[5], "a new episode gets a new fingerprint"


def test_hysteresis_keeps_a_hovering_sku_quiet() -> None:
    fired = run(low_stock(10, hysteresis=3), [4, 7, 4, 9, 4])
    assert [len(f) for f in fired] == [1, 0, 0, 0, 1]


def test_default_threshold_applies_when_the_sku_sets_none() -> None:
    assert [len(f) for f in run(low_stock(3), [5, 2], threshold=None)] == [0, 1]


def test_anomaly_is_labelled_and_deterministic() -> None:
    rule = low_stock(10)
    _, first = rule.apply(rule.initial_state(), stock_event(0, threshold=5), T0)
    _, again = rule.apply(
        rule.initial_state(), stock_event(0, threshold=5), T0 + timedelta(hours=1)
    )
    anomaly = first[0]
    assert anomaly.rule == "stock.low"
    assert anomaly.labels == {
        "sku": "SKU-1",
        "warehouse": "main",
        "severity": "P2",
        "team": "warehouse",
    }
    assert anomaly.team == "warehouse"
    assert anomaly.event_time == T0
    assert first[0].fingerprint == again[0].fingerprint, (
        "same episode of the same SKU, same fingerprint"
    )


def test_warehouses_and_skus_are_separate_keys() -> None:
    rule = low_stock(10)
    keys = {
        rule.key(stock_event(1, sku=s, warehouse=w)) for s in ("A", "B") for w in ("main", "north")
    }
    assert len(keys) == 4


def test_recovery_resolves_the_firing_fingerprint_once() -> None:
    out = published(low_stock(10, hysteresis=3), [4, 7, 8, 9, 20, 2])
    # 4 fires; 7 and 8 are not above 5 + 3; 9 recovers; 20 is still fine; 2 fires again
    assert [[a.status for a in found] for found in out] == [
        ["firing"],
        [],
        [],
        ["resolved"],
        [],
        ["firing"],
    ]
    fired, recovered, again = out[0][0], out[3][0], out[5][0]
    assert recovered.rule == "stock.recovered"
    assert recovered.fingerprint == fired.fingerprint, "resolves what the firing opened"
    assert recovered.labels == fired.labels and recovered.severity == fired.severity
    assert "9 available" in recovered.summary
    assert again.fingerprint not in {fired.fingerprint}, "the next episode is a new anomaly"


def test_recovery_keeps_the_severity_of_the_episode() -> None:
    out = published(low_stock(10), [0, 30])
    assert out[0][0].severity == "P2" and out[1][0].severity == "P2"


def test_state_stored_before_severity_was_kept_still_recovers() -> None:
    rule = low_stock(10)
    state, anomalies = rule.apply({"low": True, "episode": 3}, stock_event(40, threshold=5), T0)
    assert state == {"low": False, "episode": 3}
    assert [(a.status, a.severity) for a in anomalies] == [("resolved", "P3")]


def test_no_recovery_without_a_firing() -> None:
    assert published(low_stock(10), [50, 60, 70]) == [[], [], []]
