"""The order detectors as pure rules, with an injected clock: firing, not firing, re-arming,
late and out-of-order events, bounded state, per-channel overrides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from orderflow import placed_event as placed
from rulereplay import Replay, arrivals_within, same_transitions

from orderguard.services.order.rules import DuplicateOrder, PaymentFailureBurst
from orderguard.shared.detection.config import RuleConfig, parse_detector_config
from orderguard.shared.detection.rule import State
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.events.orders import (
    OrderPaymentFailed,
)

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def run(
    rule: Any, events: list[Event], state: State | None = None
) -> tuple[State, list[AnomalyDetected]]:
    """Apply events in the given order to one key's state; the clock is each event's time."""
    state = state if state is not None else rule.initial_state()
    raised: list[AnomalyDetected] = []
    for event in events:
        state, anomalies = rule.apply(state, event, event.envelope.time + timedelta(seconds=1))
        raised += anomalies
    return state, raised


DUPLICATE = DuplicateOrder(RuleConfig.of(DuplicateOrder))


# -- order.duplicate -------------------------------------------------------------------------


def test_the_same_order_twice_within_the_window_fires_naming_both() -> None:
    _, [anomaly] = run(DUPLICATE, [placed("o1", 0), placed("o2", 300)])
    assert anomaly.rule == "order.duplicate" and anomaly.team == "risk"
    assert anomaly.labels["customer_id"] == "c-1" and anomaly.labels["channel"] == "web"
    assert "o1 then o2" in anomaly.summary
    assert anomaly.labels["order_id"] == "o2"  # the later order: the one the bin takes
    assert anomaly.source_event_id == "e-o2"


def test_lines_are_a_multiset_and_the_address_ignores_spacing() -> None:
    reordered = (("SKU-2", 1), ("SKU-1", 2))
    _, raised = run(
        DUPLICATE, [placed("o1", 0), placed("o2", 10, lines=reordered, street="文三路1号")]
    )
    assert len(raised) == 1


def test_different_lines_or_address_or_too_far_apart_do_not_fire() -> None:
    _, raised = run(
        DUPLICATE,
        [
            placed("o1", 0),
            placed("o2", 10, lines=(("SKU-1", 3), ("SKU-2", 1))),
            placed("o3", 20, street="文二路 9 号"),
            placed("o5", 601 + 30),
        ],
    )
    assert raised == []
    assert DUPLICATE.key(placed("o4", 30, customer="c-2")) == "c-2"  # a customer is a key


def test_the_same_order_told_again_is_not_a_duplicate() -> None:
    _, raised = run(DUPLICATE, [placed("o1", 0), placed("o1", 0)])
    assert raised == []


def test_a_late_order_still_pairs_with_the_one_placed_after_it() -> None:
    _, [anomaly] = run(DUPLICATE, [placed("o2", 300), placed("o1", 0)])
    assert "o1 then o2" in anomaly.summary  # first and duplicate by placement time
    assert anomaly.labels["order_id"] == "o2"  # the later by placement, not by arrival


def test_the_state_keeps_only_two_windows() -> None:
    state, _ = run(
        DUPLICATE, [placed(f"o{n}", n * 400, lines=(("SKU-1", n + 1),)) for n in range(10)]
    )
    assert [kept["order_id"] for kept in state["orders"]] == ["o7", "o8", "o9"], "> 3600 - 1200"
    bounded = DuplicateOrder(RuleConfig.of(DuplicateOrder, max_orders_kept=3))
    state, _ = run(bounded, [placed(f"o{n}", n, lines=(("SKU-1", n + 1),)) for n in range(10)])
    assert len(state["orders"]) == 3


def test_the_window_is_overridden_per_channel() -> None:
    config = parse_detector_config(
        """
rules:
  order.duplicate:
    params: {window_s: 60}
    overrides:
      - match: {channel: marketplace}
        params: {window_s: 3600}
""",
        "<test>",
        [DuplicateOrder],
    )
    rule = DuplicateOrder(config.rule("order.duplicate"))
    _, web = run(rule, [placed("o1", 0), placed("o2", 120)])
    _, market = run(
        rule, [placed("m1", 0, channel="marketplace"), placed("m2", 1800, channel="marketplace")]
    )
    assert (len(web), len(market)) == (0, 1)


# -- payment.failures ------------------------------------------------------------------------


def failed(n: int, seconds: float, channel: str = "web") -> Event:
    at = T0 + timedelta(seconds=seconds)
    data = OrderPaymentFailed(
        order_id=f"o{n}",
        customer_id="c-1",
        channel=channel,
        payment_id=f"p{n}",
        provider="alipay",
        code="declined",
        failed_at=at,
    )
    envelope = Envelope(
        id=f"f-{n}",
        type="order.payment_failed.v1",
        source="/test",
        subject=f"o{n}",
        time=at,
        data=data.model_dump(mode="json"),
    )
    return Event(envelope, data, "orders.events", n % 3, n)


BURST = PaymentFailureBurst(RuleConfig.of(PaymentFailureBurst))


def channel_anomalies(raised: list[AnomalyDetected]) -> list[AnomalyDetected]:
    return [a for a in raised if a.labels["scope"] == "channel"]


def test_five_failures_within_five_minutes_fire_once() -> None:
    _, raised = run(BURST, [failed(n, n * 30) for n in range(8)])
    [anomaly] = raised
    assert anomaly.rule == "payment.failures" and anomaly.team == "finance"
    assert anomaly.labels == {
        "scope": "channel",
        "channel": "web",
        "severity": "P3",
        "team": "finance",
    }
    assert anomaly.source_event_id == "f-4"
    assert anomaly.summary.startswith("5 payment failures on channel web")


def test_four_failures_or_a_slow_trickle_do_not_fire() -> None:
    _, few = run(BURST, [failed(n, n * 30) for n in range(4)])
    _, slow = run(BURST, [failed(n, n * 80) for n in range(20)])  # 4 per 5 minutes at most
    assert few == [] and slow == []


def test_it_re_arms_when_the_rate_drops_and_fires_for_the_next_burst() -> None:
    first = [failed(n, n * 10) for n in range(6)]
    quiet = [failed(6, 1000)]  # a lone failure long after: the window holds 1 <= 2.5: re-armed
    second = [failed(7 + n, 1400 + n * 10) for n in range(5)]
    state, raised = run(BURST, first + quiet + second)
    assert len(raised) == 2
    assert raised[0].fingerprint != raised[1].fingerprint
    assert raised[1].source_event_id == "f-11"
    assert state["scopes"]["channel:web"]["episode"] == 2


def test_a_sustained_burst_does_not_re_fire() -> None:
    _, raised = run(BURST, [failed(n, n * 20) for n in range(60)])  # 15 per 5 minutes for 20 min
    assert len(channel_anomalies(raised)) == 1


def test_out_of_order_failures_count_in_the_window_they_belong_to() -> None:
    events = [failed(n, n * 30) for n in range(5)]
    _, raised = run(BURST, [events[4], events[0], events[3], events[1], events[2]])
    assert len(channel_anomalies(raised)) == 1
    late = [failed(n, 1000 + n * 30) for n in range(4)] + [failed(9, 1000 + 119)]
    _, raised = run(BURST, [*late[:3], late[4], late[3]])
    assert len(channel_anomalies(raised)) == 1


def test_overall_has_its_own_threshold_across_channels() -> None:
    channels = ["web", "app", "pos", "marketplace", "mini_program"]
    events = [failed(n, n * 10, channel=channels[n % 5]) for n in range(10)]
    _, raised = run(BURST, events)
    [overall] = raised  # 2 per channel: only the overall threshold (10) is reached
    assert overall.labels["scope"] == "overall" and overall.severity == "P2"
    assert "across all channels" in overall.summary


def test_thresholds_are_overridden_per_channel() -> None:
    config = parse_detector_config(
        """
rules:
  payment.failures:
    params: {overall_threshold: 100}
    overrides:
      - match: {channel: pos}
        params: {threshold: 2}
""",
        "<test>",
        [PaymentFailureBurst],
    )
    rule = PaymentFailureBurst(config.rule("payment.failures"))
    _, pos = run(rule, [failed(n, n, channel="pos") for n in range(2)])
    _, web = run(rule, [failed(n, n, channel="web") for n in range(4)])
    assert (len(pos), len(web)) == (1, 0)


def test_the_state_stays_bounded() -> None:
    state, _ = run(BURST, [failed(n, n) for n in range(500)])
    assert len(state["scopes"]["channel:web"]["times"]) <= 4 * 5 + 16


# -- late and out-of-order events (the engine's clock, tests/rulereplay.py) -------------------

LATENESS = timedelta(seconds=30)


def test_duplicates_out_of_order_within_the_lateness_give_what_in_order_gives() -> None:
    other = (("SKU-9", 1),)
    events = [
        placed("o1", 0),
        placed("o2", 590),  # o1's twin, 590 s later
        placed("o3", 610, lines=other),
        placed("o4", 900, lines=other),  # o3's twin
        placed("o5", 1500, lines=(("SKU-7", 1),)),
    ]
    in_order = Replay(DUPLICATE, LATENESS).feed(events)
    assert len(in_order.raised) == 2 and in_order.late == 0
    for seed in range(20):
        shuffled = Replay(DUPLICATE, LATENESS).feed(arrivals_within(events, LATENESS, seed))
        assert same_transitions(in_order, shuffled), seed
        assert shuffled.late == 0
    # o3 (610) before o2 (590): 20 s behind, within the lateness; o1 must still be remembered.
    assert same_transitions(
        in_order, Replay(DUPLICATE, LATENESS).feed([events[i] for i in (0, 2, 1, 3, 4)])
    )


def test_a_duplicate_later_than_the_lateness_is_counted_late_and_still_raised() -> None:
    events = [placed("o1", 0), placed("o3", 500, lines=(("SKU-9", 1),)), placed("o2", 300)]
    replay = Replay(DUPLICATE, LATENESS).feed(events)
    assert replay.late == 1, "o2 is 200 s behind the newest order: late, counted"
    [anomaly] = replay.raised
    assert "o1 then o2" in anomaly.summary, "applied all the same: the twin pairs by event time"


def test_payment_failures_out_of_order_within_the_lateness_give_what_in_order_gives() -> None:
    channels = ["web", "app", "pos", "marketplace", "mini_program"]
    events = [
        *(failed(n, n * 20) for n in range(5)),  # a web burst
        *(failed(10 + n, 400 + n * 10, channel=channels[n % 5]) for n in range(10)),  # overall
        failed(30, 700, channel="app"),
        *(failed(40 + n, 1000 + n * 15) for n in range(6)),  # web again, re-armed
    ]
    in_order = Replay(BURST, LATENESS).feed(events)
    assert [a.labels["scope"] for a in in_order.raised] == ["channel", "overall", "channel"]
    for seed in range(30):
        shuffled = Replay(BURST, LATENESS).feed(arrivals_within(events, LATENESS, seed))
        assert same_transitions(in_order, shuffled), seed


def test_a_payment_failure_later_than_the_lateness_is_counted_late_and_still_counts() -> None:
    events = [failed(n, n * 20) for n in range(4)] + [failed(9, 250, channel="app")]
    fifth = failed(4, 80)  # 170 s behind the newest failure: beyond the lateness, in the window
    replay = Replay(BURST, LATENESS).feed([*events, fifth])
    assert replay.late == 1
    [anomaly] = replay.raised
    assert anomaly.labels["channel"] == "web" and anomaly.source_event_id == "f-4"
    in_order = Replay(BURST, LATENESS).feed(sorted([*events, fifth], key=lambda e: e.envelope.time))
    assert same_transitions(in_order, replay), "the same burst, the same fingerprint"
