"""Case flows, the no-reason return policy and refund caps, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from orderguard.services.aftersales.domain import (
    FLOWS,
    Actor,
    Case,
    CaseLine,
    InvalidCase,
    KnownOrder,
    RefundAboveCap,
    RefundLine,
    check_refund,
    order_lines,
)
from orderguard.shared.errors import IllegalTransition

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
AGENT = Actor("staff", "agent-1")
CUSTOMER = Actor("customer", "storefront")


def order(
    paid_at: datetime | None = T0,
    delivered_at: datetime | None = None,
    paid: str | None = "137.80",
) -> KnownOrder:
    rows = [("MUG", 2, Decimal("39.90")), ("TEA", 1, Decimal("58.00"))]
    return KnownOrder(
        order_id="ord-1",
        customer_id="cust-1",
        channel="web",
        lines=order_lines(rows, Decimal("137.80"), Decimal(paid) if paid else None),
        placed_at=T0,
        paid_at=paid_at,
        paid_amount=Decimal(paid) if paid else None,
        delivered_at=delivered_at,
    )


def open_case(
    case_type: str = "return",
    at: datetime = T0 + timedelta(days=1),
    reason: str | None = None,
    known: KnownOrder | None = None,
    lines: tuple[CaseLine, ...] = (CaseLine("MUG", 1),),
    window_days: int = 7,
) -> tuple[Case, list[str]]:
    case, entries = Case.open(
        case_id="case-1",
        order=known or order(),
        case_type=case_type,
        lines=lines,
        reason=reason,
        priority="P3",
        channel=None,
        actor=CUSTOMER,
        now=at,
        return_window_days=window_days,
        first_response_s=86400,
    )
    return case, [e.what for e in entries]


# -- the return policy ------------------------------------------------------------------------


def test_a_return_within_the_window_is_approved_without_a_reason() -> None:
    case, what = open_case(at=T0 + timedelta(days=6, hours=23))
    assert case.state == "approved" and not case.needs_review
    assert what == ["opened", "approve"]
    assert case.policy["within_window"] is True
    assert case.first_response_at is None, "the policy's approval is no staff response"


def test_the_window_counts_from_delivery_when_known() -> None:
    delivered = order(delivered_at=T0 + timedelta(days=5))
    case, _ = open_case(at=T0 + timedelta(days=11), known=delivered)
    assert case.state == "approved"
    assert "delivery" in case.policy["explanation"]


def test_after_the_window_a_return_needs_a_reason() -> None:
    with pytest.raises(InvalidCase) as caught:
        open_case(at=T0 + timedelta(days=7, seconds=1))
    assert caught.value.slug == "reason-required"
    assert "7-day" in str(caught.value)


def test_after_the_window_a_return_with_a_reason_waits_for_review() -> None:
    case, what = open_case(at=T0 + timedelta(days=10), reason="stopped working")
    assert case.state == "requested" and case.needs_review
    assert what == ["opened", "flagged_for_review"]
    case.apply("approve", AGENT, T0 + timedelta(days=10, hours=1), "ok")
    assert not case.needs_review


def test_the_window_is_configurable() -> None:
    case, _ = open_case(at=T0 + timedelta(days=10), window_days=15)
    assert case.state == "approved"


def test_an_unpaid_order_cannot_be_returned() -> None:
    with pytest.raises(InvalidCase) as caught:
        open_case(known=order(paid_at=None, paid=None))
    assert caught.value.slug == "order-not-paid"


def test_case_lines_are_checked_against_the_order() -> None:
    with pytest.raises(InvalidCase) as above:
        open_case(lines=(CaseLine("MUG", 3),))
    assert above.value.slug == "quantity-above-ordered" and above.value.details["ordered"] == 2
    with pytest.raises(InvalidCase) as unknown:
        open_case(lines=(CaseLine("NOPE", 1),))
    assert unknown.value.slug == "line-not-in-order"


# -- flows ---------------------------------------------------------------------------------


def test_complaint_goes_intake_to_closed_with_a_satisfaction_score() -> None:
    case, _ = open_case("complaint", reason="rude courier", lines=())
    assert case.state == "intake"
    steps = [
        ("collect_evidence", "evidence"),
        ("investigate", "investigation"),
        ("resolve", "resolution"),
        ("request_feedback", "feedback"),
        ("visit", "follow_up"),
    ]
    for n, (action, state) in enumerate(steps):
        entry = case.apply(action, AGENT, T0 + timedelta(hours=n + 1), "done")
        assert (entry.from_state, entry.to_state, case.state) == (entry.from_state, state, state)
    assert case.first_response_at == T0 + timedelta(hours=1)
    with pytest.raises(InvalidCase):
        case.apply("score", AGENT, T0 + timedelta(hours=9), None)  # no score given
    case.apply("score", AGENT, T0 + timedelta(hours=9), None, satisfaction=4)
    assert case.state == "closed" and case.satisfaction == 4 and case.closed_at is not None
    assert case.resolution == "done"


def test_an_illegal_transition_names_the_current_state() -> None:
    case, _ = open_case("complaint", reason="late", lines=())
    with pytest.raises(IllegalTransition) as caught:
        case.apply("resolve", AGENT, T0, None)
    assert caught.value.current == "intake"
    assert caught.value.allowed_from == ["investigation"]
    assert case.state == "intake", "nothing changed"


def test_return_flow_and_nothing_after_closed() -> None:
    case, _ = open_case()
    for action in ("receive_goods", "refund", "close"):
        case.apply(action, AGENT, T0, None)
    assert case.state == "closed"
    for action in ("approve", "refund", "close"):
        with pytest.raises(IllegalTransition):
            case.apply(action, AGENT, T0, None)
    with pytest.raises(IllegalTransition):
        case.comment(AGENT, T0, "too late")


def test_a_comment_is_a_first_response_without_a_state_change() -> None:
    case, _ = open_case("repair", reason="broken handle")
    entry = case.comment(AGENT, T0 + timedelta(minutes=5), "looking into it")
    assert case.state == "requested" and entry.from_state is None
    assert case.first_response_at == T0 + timedelta(minutes=5)


def test_every_flow_reaches_closed_from_its_first_state() -> None:
    for case_type, flow in FLOWS.items():
        reachable, frontier = set(), [next(iter(flow))]
        while frontier:
            state = frontier.pop()
            if state not in reachable:
                reachable.add(state)
                frontier += flow[state].values()
        assert "closed" in reachable and reachable == set(flow), case_type


# -- refunds -------------------------------------------------------------------------------


def test_paid_amount_is_shared_out_by_line_to_the_cent() -> None:
    lines = order_lines(
        [("A", 1, Decimal("10.00")), ("B", 2, Decimal("10.00"))], Decimal("30.00"), Decimal("20.00")
    )
    assert [(ln.sku, ln.paid) for ln in lines] == [("A", Decimal("6.67")), ("B", Decimal("13.33"))]
    assert sum(ln.paid for ln in lines) == Decimal("20.00")


def test_a_refund_within_the_cap_is_summed() -> None:
    total = check_refund(
        order(),
        [
            RefundLine("MUG", 2, Decimal("79.80"), "return"),
            RefundLine("TEA", 1, Decimal("5"), "partial"),
        ],
        {},
    )
    assert total == Decimal("84.80")


def test_a_refund_above_what_was_paid_names_the_line_cap_and_what_is_left() -> None:
    with pytest.raises(RefundAboveCap) as caught:
        check_refund(
            order(),
            [RefundLine("MUG", 1, Decimal("50.00"), "compensation")],
            {"MUG": Decimal("40")},
        )
    details = caught.value.details
    assert details["sku"] == "MUG"
    assert (details["paid"], details["already_refunded"], details["remaining"]) == (
        "79.80",
        "40",
        "39.80",
    )


def test_two_actions_on_one_line_share_its_cap() -> None:
    with pytest.raises(RefundAboveCap):
        check_refund(
            order(),
            [
                RefundLine("TEA", 1, Decimal("50.00"), "partial"),
                RefundLine("TEA", 1, Decimal("8.01"), "compensation"),
            ],
            {},
        )


def test_an_unpaid_order_gets_no_refund() -> None:
    with pytest.raises(InvalidCase) as caught:
        check_refund(
            order(paid_at=None, paid=None), [RefundLine("MUG", 1, Decimal(1), "return")], {}
        )
    assert caught.value.slug == "order-not-paid"
