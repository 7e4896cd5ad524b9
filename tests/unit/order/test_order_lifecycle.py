"""The order lifecycle without I/O: every transition of the table, holds that remember where
they return, payments passing through a hold, intake checks and priority."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from orderguard.services.order.domain import (
    HELD_FROM,
    TRANSITIONS,
    Actor,
    Address,
    HoldReason,
    Line,
    Order,
    OrderAction,
    OrderStatus,
    Priority,
    intake_problems,
    known_province,
    next_status,
    priority_of,
)
from orderguard.shared.errors import IllegalTransition

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
OPERATOR = Actor("api", "orders:write")
GOOD = Address("浙江省", "杭州市", "西湖区", "文三路 1 号", "李雷", "310012")


def order(**address: str | None) -> Order:
    placed, _ = Order.place(
        "ord_1",
        "c-1",
        "13800138000",
        replace(GOOD, **address),
        [Line("SKU-1", 1, Decimal("10.00"))],
        "web",
        "main",
        OPERATOR,
        NOW,
    )
    return placed


def at(seconds: int) -> datetime:
    return NOW + timedelta(seconds=seconds)


HAPPY_PATH = [
    (OrderStatus.PLACED, OrderAction.PAY, OrderStatus.PAID),
    (OrderStatus.PAID, OrderAction.SHIP, OrderStatus.SHIPPED),
    (OrderStatus.SHIPPED, OrderAction.DELIVER, OrderStatus.DELIVERED),
    (OrderStatus.DELIVERED, OrderAction.COMPLETE, OrderStatus.COMPLETED),
]


@pytest.mark.parametrize(("current", "action", "target"), HAPPY_PATH)
def test_the_happy_path(current: OrderStatus, action: OrderAction, target: OrderStatus) -> None:
    assert next_status("ord_1", current, action) is target


ILLEGAL = [
    (status, action)
    for status in OrderStatus
    for action in OrderAction
    if action not in TRANSITIONS[status]
]


@pytest.mark.parametrize(("current", "action"), ILLEGAL)
def test_every_pair_not_in_the_table_is_illegal_and_names_the_status(
    current: OrderStatus, action: OrderAction
) -> None:
    with pytest.raises(IllegalTransition) as caught:
        next_status("ord_1", current, action, held_from=OrderStatus.PLACED)
    assert caught.value.current is current
    assert str(current) in str(caught.value)


def test_terminal_states_allow_nothing() -> None:
    assert TRANSITIONS[OrderStatus.COMPLETED] == {}
    assert TRANSITIONS[OrderStatus.CANCELLED] == {}
    assert TRANSITIONS[OrderStatus.ON_HOLD][OrderAction.RELEASE] == HELD_FROM


def test_a_failed_payment_may_be_retried() -> None:
    placed = order()
    placed.fail_payment("pay-1", "card_declined", None, OPERATOR, at(1), provider="alipay")
    placed.fail_payment("pay-2", "card_declined", None, OPERATOR, at(2), provider="alipay")
    assert placed.status is OrderStatus.PAYMENT_FAILED
    entry = placed.pay("pay-3", Decimal("10.00"), at(86400), OPERATOR, at(3))
    assert placed.status is OrderStatus.PAID
    assert (entry.from_state, entry.to_state) == (OrderStatus.PAYMENT_FAILED, OrderStatus.PAID)
    assert placed.payment_id == "pay-3"


def test_release_returns_to_the_status_the_order_was_held_from() -> None:
    paid = order()
    paid.pay("pay-1", Decimal("10.00"), at(86400), OPERATOR, at(1))
    entry = paid.hold(HoldReason.MANUAL, "customer asked to wait", at(600), OPERATOR, at(2))
    assert (paid.status, paid.held_from, paid.hold_release_at) == (
        OrderStatus.ON_HOLD,
        OrderStatus.PAID,
        at(600),
    )
    assert entry.note == "customer asked to wait"
    assert entry.details["hold_reason"] == "manual"
    with pytest.raises(IllegalTransition):
        paid.ship("shp-1", "sf", "SF1", OPERATOR, at(3))  # held orders do not move
    with pytest.raises(IllegalTransition):
        paid.hold(HoldReason.MANUAL, "again", None, OPERATOR, at(3))
    released = paid.release("waited enough", OPERATOR, at(4))
    assert paid.status is OrderStatus.PAID
    assert (released.what, released.from_state, released.to_state) == (
        "released",
        OrderStatus.ON_HOLD,
        OrderStatus.PAID,
    )
    assert paid.held_from is None and paid.hold_reason is None
    with pytest.raises(IllegalTransition) as caught:
        paid.release("twice", OPERATOR, at(5))
    assert caught.value.current is OrderStatus.PAID


def test_a_payment_while_held_moves_where_the_release_returns() -> None:
    held = order(street="1号")
    assert held.status is OrderStatus.ON_HOLD and held.hold_reason is HoldReason.ADDRESS_INCOMPLETE
    assert OrderAction.PAY in held.allowed_actions
    entry = held.pay("pay-1", Decimal("10.00"), at(86400), OPERATOR, at(1))
    assert held.status is OrderStatus.ON_HOLD and held.held_from is OrderStatus.PAID
    assert entry.what == "paid_while_held"
    held.release("address confirmed", OPERATOR, at(2))
    assert held.status is OrderStatus.PAID


def test_cancel_clears_the_hold() -> None:
    held = order(district="")
    held.cancel("customer gave up", OPERATOR, at(1))
    assert held.status is OrderStatus.CANCELLED and held.hold_reason is None


def test_placing_records_placed_then_the_intake_hold() -> None:
    placed, entries = Order.place(
        "ord_1",
        "c-1",
        "12345",
        GOOD,
        [Line("SKU-1", 1, Decimal(5))],
        "web",
        "main",
        OPERATOR,
        NOW,
    )
    assert [entry.what for entry in entries] == ["placed", "on_hold"]
    assert entries[1].actor == Actor("rule", "order.intake")
    assert placed.hold_reason is HoldReason.PHONE_INVALID and placed.phone == "12345"


@pytest.mark.parametrize(
    ("changes", "codes"),
    [
        ({}, []),
        ({"street": "1号"}, ["street_too_short"]),
        ({"street": ""}, ["street_too_short"]),
        ({"district": " "}, ["district_missing"]),
        ({"province": "Atlantis"}, ["province_unknown"]),
        ({"postal_code": "31001"}, ["postal_code_invalid"]),
        ({"postal_code": "ABCDEF"}, ["postal_code_invalid"]),
        ({"postal_code": None}, []),
        ({"street": "x", "postal_code": "1"}, ["street_too_short", "postal_code_invalid"]),
    ],
)
def test_address_completeness(changes: dict[str, str | None], codes: list[str]) -> None:
    address = replace(GOOD, **changes)
    assert [p.code for p in intake_problems("13800138000", address)] == codes


@pytest.mark.parametrize(
    "province",
    [
        "浙江省",
        "浙江",
        "Zhejiang",
        "zhejiang province",
        "广西壮族自治区",
        "上海市",
        "Inner Mongolia",
    ],
)
def test_known_provinces(province: str) -> None:
    assert known_province(province)


@pytest.mark.parametrize("phone", ["12345", "12800138000", "+85213800138000", "1380013800x"])
def test_a_phone_that_is_not_a_mainland_mobile_is_a_problem(phone: str) -> None:
    [problem] = intake_problems(phone, GOOD)
    assert (problem.code, problem.reason) == ("phone_invalid", HoldReason.PHONE_INVALID)


@pytest.mark.parametrize(
    ("member", "amount", "days", "expected"),
    [
        ("regular", "10", 5, Priority(0, "P4")),
        ("regular", "10", 3, Priority(10, "P4")),
        ("silver", "200", 3, Priority(30, "P3")),
        ("gold", "1000", 2, Priority(65, "P2")),
        ("platinum", "10", 1, Priority(70, "P1")),
        ("platinum", "5000", 0, Priority(100, "P1")),
        ("unknown", "199.99", 4, Priority(0, "P4")),
    ],
)
def test_priority_weights(member: str, amount: str, days: int, expected: Priority) -> None:
    assert priority_of(member, Decimal(amount), days) == expected
