"""The scenario's plan: seeded, every kind injected, and clean traffic that gives no detector a
reason to fire (checked against the same windows the detectors file is written with)."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from orderguard.cli.services_registry import rule_catalogue
from orderguard.scenario.plan import (
    KINDS,
    THRESHOLD,
    CaseAction,
    Comment,
    CountStock,
    OpenCase,
    Pay,
    PlaceOrder,
    Plan,
    ReceiveStock,
    Refund,
    Scan,
    SetStock,
    ShopConfig,
    plan_scenario,
)
from orderguard.scenario.scale import Scale
from orderguard.services.order.rules import PaymentFailureBurst
from orderguard.shared.detection.config import RuleConfig, parse_detector_config
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.events.orders import OrderPaymentFailed

SCALE = Scale(speedup=1440)
WINDOWS = SCALE.windows()
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def plan(seed: int = 3, **config: object) -> Plan:
    defaults: dict[str, object] = {"orders": 200, "tag": "t"}
    return plan_scenario(seed, WINDOWS, ShopConfig(**{**defaults, **config}))  # type: ignore[arg-type]


def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    assert plan(seed=11) == plan(seed=11)
    assert plan(seed=11) != plan(seed=12)


def test_every_kind_is_injected_as_often_as_asked_with_the_identity_its_rule_labels() -> None:
    injected = plan(injections_per_kind=3)
    assert Counter(a.kind for a in injected.anomalies) == {kind: 3 for kind in KINDS}
    assert all(a.rule == KINDS[a.kind] for a in injected.anomalies)
    keys = {a.kind: set(a.match) for a in injected.anomalies}
    assert keys["low_stock"] == {"sku", "warehouse"}
    assert keys["stalled_tracking"] == keys["overdue_delivery"] == {"order_id"}
    assert keys["carrier_exception"] == {"order_id", "reason"}
    assert keys["inventory_inconsistency"] == {"sku", "warehouse", "check"}
    assert keys["bad_address"] == {"order_id", "reason"}
    scopes = Counter(
        a.match["scope"] for a in injected.anomalies if a.kind == "payment_failure_burst"
    )
    assert scopes == {"channel": 2, "overall": 1}
    # Each label is injected by one step, or by the steps that together make it.
    triggers = Counter(
        step.label for story in injected.stories for step in story.steps if step.label
    )
    together = {
        a.id: {"repeated_refunds": 3, "duplicate_order": 2}.get(a.kind, 1)
        if a.kind != "payment_failure_burst"
        else {"channel": 5, "overall": 10}[a.match["scope"]]
        for a in injected.anomalies
    }
    assert triggers == together


def test_a_clean_plan_injects_nothing() -> None:
    clean = plan(injections_per_kind=0)
    assert clean.anomalies == ()
    assert not any(step.label for story in clean.stories for step in story.steps)


def test_one_kind_only() -> None:
    only = plan(kinds=("sla_breach",), injections_per_kind=2)
    assert [a.kind for a in only.anomalies] == ["sla_breach", "sla_breach"]
    with pytest.raises(ValueError, match="unknown anomaly kinds"):
        ShopConfig(kinds=("volcano",))


def _clean_orders(p: Plan) -> set[str]:
    """Refs of orders in stories that inject nothing."""
    return {
        step.action.ref
        for story in p.stories
        if not any(s.label for s in story.steps)
        for step in story.steps
        if isinstance(step.action, PlaceOrder)
    } - {a.match.get("order_id", "")[1:] for a in p.anomalies}


def test_clean_parcels_are_scanned_within_the_silence_and_delivered_before_the_promise() -> None:
    p = plan(injections_per_kind=0)
    paid: dict[str, float] = {}
    scans: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for story in p.stories:
        for step in story.steps:
            if isinstance(step.action, Pay) and step.action.failure_code is None:
                paid[step.action.ref] = step.at
            if isinstance(step.action, Scan):
                scans[step.action.ref].append((step.at, step.action.status))
    assert scans and set(scans) == set(paid)
    for ref, seen in scans.items():
        times = [at for at, _ in sorted(seen)]
        assert max(b - a for a, b in itertools.pairwise(times)) < WINDOWS.stall_silence_s / 2
        assert sorted(seen)[-1][1] == "delivered"
        assert times[-1] - paid[ref] < 0.9 * WINDOWS.delivery_promise_s
        assert "exception" not in {status for _, status in seen}


def test_clean_orders_never_repeat_and_customers_get_at_most_one_refund() -> None:
    p = plan(orders=400, injections_per_kind=0)
    orders = [
        s.action for story in p.stories for s in story.steps if isinstance(s.action, PlaceOrder)
    ]
    signatures = Counter(
        (o.customer_id, tuple(sorted((line.sku, line.quantity) for line in o.lines)))
        for o in orders
    )
    assert max(signatures.values()) == 1
    customer_of = {o.ref: o.customer_id for o in orders}
    case_order: dict[str, str] = {}
    refunds: Counter[str] = Counter()
    for story in p.stories:
        for step in story.steps:
            if isinstance(step.action, OpenCase):
                case_order[step.action.case_ref] = step.action.order_ref
            if isinstance(step.action, Refund):
                refunds[customer_of[case_order[step.action.case_ref]]] += 1
    assert refunds and max(refunds.values()) < WINDOWS.refund_threshold - 1
    # Every address passes intake: no bad address on clean traffic.
    assert all(len(o.address.street) >= 4 and o.address.district for o in orders)


def test_clean_cases_get_a_staff_response_within_the_sla() -> None:
    p = plan(orders=400, injections_per_kind=0)
    cases = 0
    for story in p.stories:
        opened = {s.action.case_ref: s.at for s in story.steps if isinstance(s.action, OpenCase)}
        for case, at in opened.items():
            cases += 1
            responses = [
                s.at
                for s in story.steps
                if isinstance(s.action, Comment | CaseAction | Refund) and s.action.case_ref == case
            ]
            assert responses and min(responses) - at < 0.5 * WINDOWS.first_response_s
    assert cases > 5


def test_clean_payment_failures_never_make_a_burst() -> None:
    p = plan(orders=600, injections_per_kind=0, payment_failure_rate=0.3)
    failures = sorted(
        s.at
        for story in p.stories
        for s in story.steps
        if isinstance(s.action, Pay) and s.action.failure_code
    )
    assert len(failures) > 10
    window = WINDOWS.payment_window_s
    assert max(sum(t <= u < t + window for u in failures) for t in failures) <= 2


def test_bursts_are_alone_in_their_windows() -> None:
    p = plan(orders=600, injections_per_kind=4)
    failures = sorted(
        (s.at, bool(s.label) or story.name.startswith("failure burst"))
        for story in p.stories
        for s in story.steps
        if isinstance(s.action, Pay) and s.action.failure_code
    )
    window = WINDOWS.payment_window_s
    bursts = [t for t, burst in failures if burst]
    clean = [t for t, burst in failures if not burst]
    assert len(bursts) == 2 * 5 + 2 * 10  # two channel bursts, two overall ones
    assert all(abs(c - b) > 2 * window for c in clean for b in bursts)
    starts = [bursts[0]] + [b for a, b in itertools.pairwise(bursts) if b - a > window]
    assert len(starts) == 4


def test_clean_stock_is_received_before_it_nears_its_threshold() -> None:
    p = plan(orders=3000, injections_per_kind=0)
    stock = {(a.sku, a.warehouse): a.on_hand for a in p.setup if isinstance(a, SetStock)}
    events = sorted(
        (s.at, 0 if isinstance(s.action, ReceiveStock) else 1, n, s.action)
        for n, (story, s) in enumerate((story, s) for story in p.stories for s in story.steps)
        if isinstance(s.action, ReceiveStock | PlaceOrder)
    )
    receipts = 0
    for _, _, _, action in events:
        if isinstance(action, ReceiveStock):
            receipts += 1
            stock[(action.sku, action.warehouse)] += action.quantity
            continue
        for line in action.lines:
            stock[(line.sku, action.warehouse)] -= line.quantity
            assert stock[(line.sku, action.warehouse)] >= THRESHOLD + 20
    assert receipts > 0
    # Counts on clean traffic find what was recorded.
    counts = [
        s.action for story in p.stories for s in story.steps if isinstance(s.action, CountStock)
    ]
    assert counts and all(c.counted_on_hand == stock[(c.sku, c.warehouse)] for c in counts)


def test_injected_silences_outlast_their_windows_and_deadlines_fall_inside_the_run() -> None:
    p = plan(injections_per_kind=1)
    stall = next(a for a in p.anomalies if a.kind == "stalled_tracking")
    ref = stall.match["order_id"][1:]
    scans = sorted(
        s.at
        for story in p.stories
        for s in story.steps
        if isinstance(s.action, Scan) and s.action.ref == ref
    )
    assert max(b - a for a, b in itertools.pairwise(scans)) > 1.2 * WINDOWS.stall_silence_s
    # The player keeps that silence even when it runs behind its plan.
    [resume] = [
        s
        for story in p.stories
        for s in story.steps
        if isinstance(s.action, Scan) and s.action.ref == ref and s.min_gap_s
    ]
    assert resume.min_gap_s == 1.5 * WINDOWS.stall_silence_s
    overdue = next(a for a in p.anomalies if a.kind == "overdue_delivery")
    assert overdue.fires_after_s == WINDOWS.delivery_promise_s
    assert p.end_s > WINDOWS.delivery_promise_s


def test_the_detectors_file_is_valid_and_scaled() -> None:
    config = parse_detector_config(SCALE.detectors_yaml(), "scenario", rule_catalogue())
    stalled = config.rule("shipment.stalled").base
    assert stalled.silence_hours == pytest.approx(24 / 1440)
    assert config.rule("case.sla_breached").base.first_response_s == pytest.approx(60.0)
    # closeness windows keep a floor of real time
    assert config.rule("order.duplicate").base.window_s == 30.0
    assert config.rule("payment.failures").base.window_s == 10.0
    assert Scale(speedup=10).detector_params()["payment.failures"]["window_s"] == 30.0
    assert SCALE.windows().duplicate_window_s == 30.0 * 1440


def payment_failed(pay: Pay, channel: str, at: datetime) -> Event:
    data = OrderPaymentFailed(
        order_id=pay.ref,
        customer_id="c-1",
        channel=channel,
        payment_id=pay.payment_id,
        provider=pay.provider,
        code=pay.failure_code or "",
        failed_at=at,
    )
    envelope = Envelope(
        type="order.payment_failed.v1",
        source="/test",
        subject=pay.ref,
        time=at,
        data=data.model_dump(mode="json"),
    )
    return Event(envelope, data, "orders.events", 0, 0)


def identity(anomaly: AnomalyDetected) -> dict[str, str]:
    return {k: v for k, v in anomaly.labels.items() if k in ("scope", "channel")}


@pytest.mark.parametrize("seed", [1, 11, 23])
def test_the_payment_rule_over_a_bench_sized_plan_raises_exactly_the_labelled_bursts(
    seed: int,
) -> None:
    """The plan's failures (their time is the plan's) through the real rule with the scaled
    params: one raise per labelled burst, with its identity, at its last failure — nothing
    else. Seed 11 once planned an injected order's clean `app` failure 2.5 s (real) before an
    overall burst whose four `app` failures made it five: a true channel burst no label told."""
    scale = Scale(speedup=2880)
    p = plan_scenario(
        seed, scale.windows(), ShopConfig(orders=2000, injections_per_kind=20, tag="t")
    )
    rule = PaymentFailureBurst(
        RuleConfig.of(PaymentFailureBurst, **scale.detector_params()["payment.failures"])
    )
    channel_of = {
        s.action.ref: s.action.channel
        for story in p.stories
        for s in story.steps
        if isinstance(s.action, PlaceOrder)
    }
    failures = sorted(
        (s.at, s.action, s.label or "")
        for story in p.stories
        for s in story.steps
        if isinstance(s.action, Pay) and s.action.failure_code
    )
    match_of = {a.id: a.match for a in p.anomalies}
    last_of = {label: at for at, _, label in failures}  # a burst is due at its last failure
    state, raised, labelled = rule.initial_state(), [], []
    for at, pay, label in failures:
        event = payment_failed(pay, channel_of[pay.ref], T0 + timedelta(seconds=scale.real(at)))
        state, anomalies = rule.apply(state, event, event.envelope.time)
        raised += [(at, identity(anomaly)) for anomaly in anomalies]
        if label and last_of[label] == at:
            labelled.append((at, match_of[label]))
    assert len(labelled) >= 19
    assert raised == labelled
