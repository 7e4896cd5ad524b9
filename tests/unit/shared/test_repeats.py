"""A line that repeats for one reason is said once per period, with how many were not."""

from __future__ import annotations

from orderguard.shared.logging import Repeats


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_said_first_then_held_until_the_period_passes_then_said_with_the_count() -> None:
    clock = Clock()
    repeats = Repeats(60.0, clock)
    assert repeats.due("a") is True
    assert repeats.held("a") == 0
    clock.now = 10.0
    assert [repeats.due("a") for _ in range(3)] == [False, False, False]
    clock.now = 60.0
    assert repeats.due("a") is True
    assert repeats.held("a") == 3
    assert repeats.held("a") == 0  # counted again from here


def test_each_key_has_its_own_period() -> None:
    clock = Clock()
    repeats = Repeats(60.0, clock)
    assert repeats.due(("customer", "order.confirmed")) is True
    assert repeats.due(("customer", "shipment.delayed")) is True
    assert repeats.due(("customer", "order.confirmed")) is False
