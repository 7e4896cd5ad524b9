"""The aftersales detector rules as pure functions with an injected clock: the first-response SLA
(case.sla_breached) and repeated refunds (refund.repeated)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel
from rulereplay import Replay, arrivals_within, same_transitions

from orderguard.services.aftersales.rules import CaseSlaBreached, RepeatedRefunds
from orderguard.shared.detection.config import Override, RuleConfig
from orderguard.shared.detection.rule import State
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events import REGISTRY
from orderguard.shared.events.aftersales import (
    CaseClosed,
    CaseOpened,
    CaseUpdated,
    RefundedLine,
    RefundIssued,
)

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
DAY = timedelta(days=1)


def event(data: BaseModel, at: datetime, n: int = 0) -> Event:
    envelope = Envelope(
        id=f"e-{n}-{at.isoformat()}",
        type=REGISTRY.type_of(type(data)),
        source="/test",
        subject="x",
        time=at,
        data=data.model_dump(mode="json"),
    )
    return Event(envelope, data, "aftersales.events", 0, n)


# -- case.sla_breached -------------------------------------------------------------------------


def sla_rule(**overrides: float) -> CaseSlaBreached:
    found = [
        Override({"case_type": "complaint", "priority": "P1"}, {"first_response_s": seconds}, n)
        for n, seconds in enumerate(overrides.values())
    ]
    return CaseSlaBreached(
        RuleConfig(
            CaseSlaBreached.name,
            CaseSlaBreached.Params,
            CaseSlaBreached.override_labels,
            {},
            found,
        )
    )


def opened(at: datetime = T0, case_type: str = "return", priority: str = "P3") -> Event:
    return event(
        CaseOpened(
            case_id="case-1",
            order_id="ord-1",
            customer_id="cust-1",
            case_type=case_type,  # type: ignore[arg-type]
            reason="broken",
            priority=priority,  # type: ignore[arg-type]
            opened_at=at,
        ),
        at,
    )


def updated(at: datetime, responded: bool = True, n: int = 1) -> Event:
    return event(
        CaseUpdated(
            case_id="case-1",
            order_id="ord-1",
            customer_id="cust-1",
            case_type="return",
            action="comment" if responded else "approve",
            from_state="requested",
            to_state="requested",
            actor="staff:agent-1" if responded else "policy:return-window",
            responded=responded,
            updated_at=at,
        ),
        at,
        n,
    )


def test_opening_a_case_arms_its_first_response_deadline() -> None:
    rule = sla_rule()
    state, fired = rule.apply(rule.initial_state(), opened(), T0)
    assert fired == [] and rule.deadline(state) == T0 + 24 * H


def test_the_deadline_depends_on_case_type_and_priority() -> None:
    rule = sla_rule(complaint_p1=3600)
    state, _ = rule.apply(rule.initial_state(), opened(case_type="complaint", priority="P1"), T0)
    assert rule.deadline(state) == T0 + H
    other, _ = rule.apply(rule.initial_state(), opened(case_type="complaint", priority="P3"), T0)
    assert rule.deadline(other) == T0 + 24 * H


def test_it_fires_when_the_clock_reaches_the_deadline_with_no_response() -> None:
    rule = sla_rule()
    state, _ = rule.apply(rule.initial_state(), opened(), T0)
    state, [anomaly] = rule.tick(state, "case-1", T0 + 24 * H)
    assert anomaly.rule == "case.sla_breached" and anomaly.status == "firing"
    assert anomaly.team == "customer_service"
    assert anomaly.labels["case_id"] == "case-1"
    assert anomaly.event_time == T0 + 24 * H
    assert rule.deadline(state) is None, "one breach per case"


def test_a_response_in_time_disarms_it() -> None:
    rule = sla_rule()
    state, _ = rule.apply(rule.initial_state(), opened(), T0)
    state, fired = rule.apply(state, updated(T0 + 23 * H), T0 + 23 * H)
    assert fired == [] and rule.deadline(state) is None


def test_an_update_that_is_not_staff_does_not_count() -> None:
    rule = sla_rule()
    state, _ = rule.apply(rule.initial_state(), opened(), T0)
    state, _ = rule.apply(state, updated(T0 + H, responded=False), T0 + H)
    assert rule.deadline(state) == T0 + 24 * H


def test_a_late_response_resolves_the_breach_with_the_same_fingerprint() -> None:
    rule = sla_rule()
    state, _ = rule.apply(rule.initial_state(), opened(), T0)
    state, [firing] = rule.tick(state, "case-1", T0 + 25 * H)
    state, [resolved] = rule.apply(state, updated(T0 + 30 * H), T0 + 30 * H)
    assert resolved.status == "resolved" and resolved.fingerprint == firing.fingerprint
    state, again = rule.apply(state, updated(T0 + 31 * H, n=2), T0 + 31 * H)
    assert again == [], "resolved once"


def test_closing_counts_as_a_response() -> None:
    rule = sla_rule()
    state, _ = rule.apply(rule.initial_state(), opened(), T0)
    closed = CaseClosed(
        case_id="case-1",
        order_id="ord-1",
        customer_id="cust-1",
        case_type="return",
        resolution="refunded",
        closed_at=T0 + H,
    )
    state, _ = rule.apply(state, event(closed, T0 + H, 3), T0 + H)
    assert rule.deadline(state) is None


def test_the_same_opening_resent_does_not_move_the_deadline() -> None:
    rule = sla_rule()
    state, _ = rule.apply(rule.initial_state(), opened(), T0)
    again, _ = rule.apply(state, opened(T0 + 5 * H), T0 + 5 * H)
    assert again is state


def test_a_response_before_the_opening_arrives_out_of_order_keeps_it_quiet() -> None:
    rule = sla_rule()
    state, _ = rule.apply(rule.initial_state(), updated(T0 + H), T0 + H)
    state, _ = rule.apply(state, opened(), T0 + H)
    assert rule.deadline(state) is None


# -- refund.repeated -------------------------------------------------------------------------


def refunds_rule(
    threshold: int = 3, days: float = 30, web_threshold: int | None = None
) -> RepeatedRefunds:
    overrides = (
        [Override({"channel": "web"}, {"threshold": web_threshold}, 0)] if web_threshold else []
    )
    return RepeatedRefunds(
        RuleConfig(
            RepeatedRefunds.name,
            RepeatedRefunds.Params,
            RepeatedRefunds.override_labels,
            {"threshold": threshold, "window_s": days * 86400},
            overrides,
        )
    )


def refund(at: datetime, refund_id: str, customer: str = "cust-1", channel: str = "app") -> Event:
    data = RefundIssued(
        case_id=f"case-{refund_id}",
        refund_id=refund_id,
        order_id=f"ord-{refund_id}",
        customer_id=customer,
        channel=channel,
        lines=[RefundedLine(sku="MUG", quantity=1, amount=Decimal("9.90"))],
        amount=Decimal("9.90"),
        reason="test",
        issued_at=at,
    )
    return event(data, at, hash(refund_id) % 1000)


def run(
    rule: RepeatedRefunds, events: list[Event], state: State | None = None
) -> tuple[State, list[int]]:
    state = state or rule.initial_state()
    fired = []
    for e in events:
        state, anomalies = rule.apply(state, e, e.envelope.time)
        fired.append(len(anomalies))
    return state, fired


def test_three_refunds_within_thirty_days_fire_once() -> None:
    rule = refunds_rule()
    state, fired = run(rule, [refund(T0 + n * 5 * DAY, f"r{n}") for n in range(5)])
    assert fired == [0, 0, 1, 0, 0]
    assert state["episode"] == 1


def test_refunds_spread_wider_than_the_window_do_not_fire() -> None:
    rule = refunds_rule()
    _, fired = run(rule, [refund(T0 + n * 16 * DAY, f"r{n}") for n in range(5)])
    assert fired == [0, 0, 0, 0, 0], "never three within any 30 days"


def test_the_window_slides_and_re_arms_for_a_new_episode() -> None:
    rule = refunds_rule()
    days = [0, 1, 2, 60, 61, 62]
    state, fired = run(rule, [refund(T0 + d * DAY, f"r{d}") for d in days])
    assert fired == [1 if d in (2, 62) else 0 for d in days]
    assert state["episode"] == 2
    assert len(state["refunds"]) == 3, "only refunds still in the window are kept"


def test_a_late_refund_inside_the_window_counts_and_one_outside_does_not() -> None:
    rule = refunds_rule()
    state, fired = run(rule, [refund(T0 + 40 * DAY, "a"), refund(T0 + 45 * DAY, "b")])
    assert fired == [0, 0]
    _, outside = run(rule, [refund(T0, "old")], state)
    assert outside == [0], "40+ days before the latest: outside the window"
    _, inside = run(rule, [refund(T0 + 20 * DAY, "late")], state)
    assert inside == [1], "late, but within 30 days of the latest"


def test_the_same_refund_resent_is_counted_once() -> None:
    rule = refunds_rule()
    _, fired = run(rule, [refund(T0, "a"), refund(T0, "a"), refund(T0 + DAY, "b")])
    assert fired == [0, 0, 0]


def test_customers_are_counted_apart_by_key() -> None:
    rule = refunds_rule()
    assert rule.key(refund(T0, "a", customer="c-9")) == "c-9"


def test_a_channel_override_lowers_the_threshold() -> None:
    rule = refunds_rule(web_threshold=2)
    _, web = run(rule, [refund(T0, "a", channel="web"), refund(T0 + DAY, "b", channel="web")])
    _, app = run(rule, [refund(T0, "a"), refund(T0 + DAY, "b")])
    assert web == [0, 1] and app == [0, 0]


def test_the_anomaly_is_for_risk_and_deterministic() -> None:
    rule = refunds_rule(threshold=2)
    state, _ = rule.apply(rule.initial_state(), refund(T0, "a"), T0)
    _, [first] = rule.apply(state, refund(T0 + H, "b"), T0 + H)
    _, [again] = rule.apply(state, refund(T0 + H, "b"), T0 + 2 * H)
    assert first.team == "risk" and first.rule == "refund.repeated"
    assert first.labels["customer_id"] == "cust-1"
    assert first.fingerprint == again.fingerprint


# -- late and out-of-order events (the engine's clock, tests/rulereplay.py) -------------------


def case_opened(case_id: str, at: datetime) -> Event:
    data = CaseOpened(
        case_id=case_id,
        order_id=f"ord-{case_id}",
        customer_id="cust-1",
        case_type="complaint",
        reason="crushed",
        priority="P3",
        opened_at=at,
    )
    return event(data, at, int(case_id[1:]))


def case_answered(case_id: str, at: datetime) -> Event:
    data = CaseUpdated(
        case_id=case_id,
        order_id=f"ord-{case_id}",
        customer_id="cust-1",
        case_type="complaint",
        action="comment",
        from_state="intake",
        to_state="intake",
        actor="staff:agent-1",
        responded=True,
        updated_at=at,
    )
    return event(data, at, 100 + int(case_id[1:]))


def test_sla_out_of_order_within_the_lateness_gives_what_in_order_gives() -> None:
    rule, lateness = sla_rule(), 2 * H
    events = [
        case_opened("k1", T0),
        case_answered("k1", T0 + 20 * H),  # in time
        case_opened("k2", T0 + 5 * H),  # never answered: breached at 29 h
        case_opened("k3", T0 + 6 * H),
        case_answered("k3", T0 + 31 * H),  # breached at 30 h, answered late
        case_opened("k5", T0 + 32.5 * H),  # arriving before k3's answer, it moves the clock
        case_answered("k5", T0 + 33 * H),  # past k3's deadline: a tick, not only the answer
        case_opened("k4", T0 + 40 * H),
        case_answered("k4", T0 + 41 * H),
    ]
    in_order = Replay(rule, lateness).feed(sorted(events, key=lambda e: e.envelope.time))
    in_order.finish(T0 + 100 * H)
    # k3's answer (31 h) is after its deadline (30 h): breached and resolved, whether the
    # clock got to 30 h before the answer arrived or not.
    assert sorted((a.labels["case_id"], a.status) for a in in_order.raised) == [
        ("k2", "firing"),
        ("k3", "firing"),
        ("k3", "resolved"),
    ]
    for seed in range(30):
        shuffled = Replay(rule, lateness).feed(arrivals_within(events, lateness, seed))
        shuffled.finish(T0 + 100 * H)
        assert same_transitions(in_order, shuffled), seed
        assert shuffled.late == 0


def test_a_response_later_than_the_lateness_is_counted_late_and_resolves_the_breach() -> None:
    replay = Replay(sla_rule(), 2 * H).feed(
        [case_opened("k1", T0), case_opened("k2", T0 + 27 * H), case_answered("k1", T0 + 20 * H)]
    )
    # k2's opening moved the clock to 25 h, past k1's deadline (24 h): breached, then the
    # answer (20 h, 5 h behind the clock) arrives late: counted, applied, and it resolves.
    assert replay.late == 1
    assert [(a.labels["case_id"], a.status) for a in replay.raised] == [
        ("k1", "firing"),
        ("k1", "resolved"),
    ]
    assert "responded to late" in replay.raised[1].summary


def test_refunds_out_of_order_within_the_lateness_give_what_in_order_gives() -> None:
    rule, lateness = refunds_rule(days=100), 30 * DAY
    events = [
        refund(T0, "r1"),
        refund(T0 + 10 * DAY, "r2"),
        refund(T0 + 95 * DAY, "r3"),  # r1, r2, r3 within 100 days: fires
        refund(T0 + 120 * DAY, "r4"),  # only r2..r4 in the window ending here
        refund(T0 + 400 * DAY, "r5"),
        refund(T0 + 401 * DAY, "r6"),
        refund(T0 + 402 * DAY, "r7"),  # a new episode
        refund(T0 + 50 * DAY, "x1", customer="cust-2"),
        refund(T0 + 60 * DAY, "x2", customer="cust-2"),
    ]
    in_order = Replay(rule, lateness).feed(sorted(events, key=lambda e: e.envelope.time))
    assert [a.labels["customer_id"] for a in in_order.raised] == ["cust-1", "cust-1"]
    for seed in range(30):
        shuffled = Replay(rule, lateness).feed(arrivals_within(events, lateness, seed))
        assert same_transitions(in_order, shuffled), seed
    # r4 (120 d) before r3 (95 d): the window ending at r3 must still see r1 and r2.
    r4_first = Replay(rule, lateness).feed([events[i] for i in (0, 1, 3, 2, 4, 5, 6)])
    assert [a.fingerprint for a in r4_first.raised] == [
        a.fingerprint for a in in_order.raised if a.labels["customer_id"] == "cust-1"
    ]


def test_a_refund_later_than_the_lateness_is_counted_late_and_still_counts() -> None:
    rule = refunds_rule(days=100)
    replay = Replay(rule, 10 * DAY).feed(
        [refund(T0, "r1"), refund(T0 + 150 * DAY, "r4"), refund(T0 + 20 * DAY, "r2")]
    )
    assert replay.late == 0 or replay.raised == []
    replay.feed([refund(T0 + 60 * DAY, "r3")])  # 90 days behind the newest: late
    assert replay.late == 2
    [anomaly] = replay.raised
    assert anomaly.source_event_id == refund(T0 + 60 * DAY, "r3").id, "r1, r2, r3 in 100 days"
