"""A label's times from its steps as played: due when the rule that detects it counts it due,
never before its last step was sent; the player's own queue is not the system's delay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orderguard.scenario.plan import PlannedAnomaly
from orderguard.scenario.player import Played, label_of
from orderguard.scenario.scale import Scale

T0 = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
SCALE = Scale(speedup=2880)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def planned(kind: str, rule: str, fires_after_s: float = 0.0) -> PlannedAnomaly:
    return PlannedAnomaly("a-1", kind, rule, {}, fires_after_s, "")


def test_refunds_sent_out_of_plan_order_are_due_when_the_last_was_sent() -> None:
    # The third refund of the plan went out first; the second, held up in its story, last.
    parts = [Played(at(0), at(0)), Played(at(5.2), at(5.2)), Played(at(0.6), at(0.6))]
    label = label_of(planned("repeated_refunds", "refund.repeated"), {}, parts, SCALE, 10)
    assert (label.injected_at, label.due_at, label.window_end) == (at(0), at(5.2), at(15.2))


def test_a_burst_is_due_when_its_last_failure_was_sent_not_at_its_plan_time() -> None:
    # Failures carry the plan's time (0.00-0.03 s) but the player sent them late.
    parts = [Played(at(i * 0.01), at(2 + i * 0.5)) for i in range(5)]
    label = label_of(planned("payment_failure_burst", "payment.failures"), {}, parts, SCALE, 10)
    assert label.due_at == at(4.0)


def test_a_timed_anomaly_is_due_at_its_own_time_plus_the_scaled_silence() -> None:
    # A scan stamped at 1 s, sent at 1.4 s (queued in the player): the stall is due 30 s
    # (24 h / 2880) after the scan's own time — what the rule counts.
    stall = planned("stalled_tracking", "shipment.stalled", fires_after_s=24 * 3600)
    label = label_of(stall, {"order_id": "o1"}, [Played(at(1), at(1.4))], SCALE, 10)
    assert label.injected_at == at(1.4) and label.due_at == at(31)
    assert label.match == {"order_id": "o1"}
