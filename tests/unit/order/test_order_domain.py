"""The order domain without I/O: state machine, totals, phone rules, ids."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from orderguard.services.order.domain import (
    HELD_FROM,
    TRANSITIONS,
    Actor,
    Address,
    InvalidPhone,
    Line,
    Order,
    OrderAction,
    OrderStatus,
    allowed_actions,
    mask_phone,
    new_order_id,
    next_status,
    normalise_mobile,
    order_total,
)
from orderguard.shared.errors import IllegalTransition

NOW = datetime(2026, 11, 22, 8, 30, tzinfo=UTC)
API = Actor("api", "orders:write")
ADDRESS = Address(
    province="浙江省", city="杭州市", district="西湖区", street="文三路 1 号", recipient="李雷"
)


def placed_order(*lines: Line) -> Order:
    order, _ = Order.place(
        order_id="ord_1",
        customer_id="c-1",
        phone="+86 138-0013-8000",
        address=ADDRESS,
        lines=lines or (Line("SKU-1", 2, Decimal("9.90")),),
        channel="web",
        warehouse="main",
        actor=API,
        now=NOW,
    )
    return order


FULL_WIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + n) for n in range(10)))


# -- state machine ---------------------------------------------------------------------------


def test_every_status_has_a_row_in_the_transition_table() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)
    for targets in TRANSITIONS.values():
        assert set(targets.values()) <= {*OrderStatus, HELD_FROM}


def test_placed_can_be_cancelled() -> None:
    assert next_status("ord_1", OrderStatus.PLACED, OrderAction.CANCEL) is OrderStatus.CANCELLED
    assert OrderAction.CANCEL in allowed_actions(OrderStatus.PLACED)


def test_cancelled_is_terminal_and_the_error_names_the_current_status() -> None:
    with pytest.raises(IllegalTransition) as caught:
        next_status("ord_1", OrderStatus.CANCELLED, OrderAction.CANCEL)
    assert caught.value.current is OrderStatus.CANCELLED
    assert caught.value.action is OrderAction.CANCEL
    assert "cancelled" in str(caught.value)
    assert allowed_actions(OrderStatus.CANCELLED) == []


def test_place_records_a_placed_entry() -> None:
    order, [entry] = Order.place(
        order_id="ord_1",
        customer_id="c-1",
        phone="13800138000",
        address=ADDRESS,
        lines=[Line("SKU-1", 1, Decimal(5))],
        channel="app",
        warehouse="main",
        actor=API,
        now=NOW,
    )
    assert order.status is OrderStatus.PLACED
    assert (entry.what, entry.to_state, entry.from_state, entry.actor, entry.at) == (
        "placed",
        OrderStatus.PLACED,
        None,
        API,
        NOW,
    )
    assert entry.note == "placed through app"


def test_place_needs_a_line() -> None:
    with pytest.raises(ValueError, match="at least one line"):
        Order.place("ord_1", "c-1", "13800138000", ADDRESS, [], "web", "main", API, NOW)


def test_cancel_moves_placed_to_cancelled_with_who_and_why() -> None:
    order = placed_order()
    later = NOW + timedelta(minutes=5)
    entry = order.cancel("customer changed mind", Actor("api", "orders:write"), later)
    assert order.status is OrderStatus.CANCELLED
    assert order.updated_at == later
    assert (entry.what, entry.from_state, entry.to_state, entry.note, entry.at) == (
        "cancelled",
        OrderStatus.PLACED,
        OrderStatus.CANCELLED,
        "customer changed mind",
        later,
    )


def test_cancelling_twice_is_illegal_and_leaves_the_order_as_it_was() -> None:
    order = placed_order()
    order.cancel("first", API, NOW)
    with pytest.raises(IllegalTransition) as caught:
        order.cancel("second", API, NOW + timedelta(seconds=1))
    assert caught.value.current is OrderStatus.CANCELLED
    assert caught.value.thing_id == "ord_1"
    assert order.status is OrderStatus.CANCELLED
    assert order.updated_at == NOW


def test_timeline_entry_is_told_by_its_event() -> None:
    _, [entry] = Order.place(
        "ord_1", "c-1", "13800138000", ADDRESS, [Line("S", 1, Decimal(1))], "web", "main", API, NOW
    )
    told = entry.told_by("order.placed.v1", "evt-1")
    assert (told.event_type, told.event_id, told.what) == ("order.placed.v1", "evt-1", "placed")
    assert entry.event_id is None  # entries are values


def test_place_writes_prices_to_the_cent_and_rejects_bad_lines() -> None:
    order = placed_order(Line("A", 1, Decimal("5.5")), Line("B", 1, Decimal(7)))
    assert [str(line.unit_price) for line in order.lines] == ["5.50", "7.00"]
    for bad in (
        Line("A", 0, Decimal(1)),
        Line("A", 1, Decimal(-1)),
        Line("A", 1, Decimal("1.005")),
    ):
        with pytest.raises(ValueError, match="A: "):
            placed_order(bad)


# -- totals ----------------------------------------------------------------------------------


def test_total_is_the_sum_of_quantity_times_price_in_cents() -> None:
    lines = [
        Line("A", 3, Decimal("19.99")),
        Line("B", 1, Decimal("0.01")),
        Line("C", 2, Decimal(0)),
    ]
    assert order_total(lines) == Decimal("59.98")
    assert placed_order(*lines).total_amount == Decimal("59.98")


def test_total_has_exactly_two_decimals() -> None:
    assert str(order_total([Line("A", 1, Decimal(5))])) == "5.00"
    assert str(Line("A", 3, Decimal("0.10")).amount) == "0.30"  # no float drift


def test_a_sku_may_appear_on_two_lines() -> None:
    assert order_total([Line("A", 1, Decimal("2.50")), Line("A", 2, Decimal("2.50"))]) == Decimal(
        "7.50"
    )


# -- phone -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("13800138000", "13800138000"),
        ("19912345678", "19912345678"),
        ("+8613800138000", "13800138000"),
        ("008615912345678", "15912345678"),
        ("+86 138 0013 8000", "13800138000"),
        ("138-0013-8000", "13800138000"),
    ],
)
def test_mainland_mobiles_are_accepted_and_normalised(raw: str, normalised: str) -> None:
    assert normalise_mobile(raw) == normalised


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "1380013800",  # 10 digits
        "138001380001",  # 12 digits
        "12800138000",  # second digit 2
        "10800138000",  # second digit 0
        "23800138000",  # does not start with 1
        "+85213800138000",  # Hong Kong prefix
        "8613800138000",  # 86 without + or 00
        "+86+8613800138000",  # prefix twice
        "1380013800a",
        "021-12345678",  # a landline
        "13800138000".translate(FULL_WIDTH),  # full-width digits
        "138" + "00138000".translate(FULL_WIDTH),  # ASCII start, full-width rest
    ],
)
def test_other_numbers_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidPhone):
        normalise_mobile(raw)


def test_masking_keeps_the_first_three_and_last_four_digits() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("123") == "***"


# -- ids -------------------------------------------------------------------------------------


def test_order_ids_are_unique_and_sort_by_creation_time() -> None:
    first = new_order_id(NOW)
    later = new_order_id(NOW + timedelta(milliseconds=1))
    assert re.fullmatch(r"ord_[0-9A-HJKMNP-TV-Z]{26}", first)
    assert first != new_order_id(NOW)
    assert first < later


def test_an_address_as_a_dict_has_every_field_as_asdict_gives_it() -> None:
    """`Address.as_dict` spells its fields out (cheaper than `asdict`): a field added to the
    address must be added there too, or orders would be stored and shown without it."""
    assert ADDRESS.as_dict() == asdict(ADDRESS)
    partial = Address("Zhejiang", "Hangzhou", "", "", "Li Lei")
    assert partial.as_dict() == asdict(partial)
