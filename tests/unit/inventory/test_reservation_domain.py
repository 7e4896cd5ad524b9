"""Reservation arithmetic: all-or-nothing shortages, lines summed per SKU."""

from __future__ import annotations

import pytest

from orderguard.services.inventory.domain import StockLevel, lines_by_stock, shortages
from orderguard.shared.events.inventory import ReservedLine


def test_lines_of_the_same_sku_are_summed() -> None:
    lines = [
        ReservedLine(sku="A", warehouse="main", quantity=2),
        ReservedLine(sku="A", warehouse="main", quantity=3),
    ]
    assert lines_by_stock(lines) == {("A", "main"): 5}


def test_shortage_names_every_line_that_cannot_be_met() -> None:
    levels = {("A", "main"): StockLevel("A", "main", on_hand=5, reserved=3)}
    missing = shortages(levels, {("A", "main"): 3, ("B", "main"): 1})
    assert [(s.sku, s.requested, s.available) for s in missing] == [("A", 3, 2), ("B", 1, 0)]


def test_no_shortage_when_available_covers_the_order() -> None:
    levels = {("A", "main"): StockLevel("A", "main", on_hand=5, reserved=3)}
    assert shortages(levels, {("A", "main"): 2}) == []


def test_reserve_beyond_available_is_refused_and_release_never_goes_negative() -> None:
    level = StockLevel("A", "main", on_hand=2)
    with pytest.raises(ValueError, match="2 available"):
        level.reserve(3)
    assert level.reserve(2).available == 0
    assert level.release(5).reserved == 0
