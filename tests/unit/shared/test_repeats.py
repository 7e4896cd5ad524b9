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
    assert repeats.say("a") == 0
    clock.now = 10.0
    assert [repeats.say("a") for _ in range(3)] == [None, None, None]
    clock.now = 60.0
    assert repeats.say("a") == 3
    clock.now = 120.0
    assert repeats.say("a") == 0  # counted again from the last time it was said


def test_each_key_has_its_own_period() -> None:
    clock = Clock()
    repeats = Repeats(60.0, clock)
    assert repeats.say(("customer", "order.confirmed")) == 0
    assert repeats.say(("customer", "shipment.delayed")) == 0
    assert repeats.say(("customer", "order.confirmed")) is None
