"""Delivery policy with an injected clock and randomness: quiet hours (across midnight, in the
configured time zone, staff and P1), the retry backoff schedule, rate windows, dedup keys."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from orderguard.services.notifier.deliveries.policy import (
    admitted,
    dedup_key,
    mask_contact,
    quiet_until,
    rate_window,
    retry_delay_s,
)
from orderguard.services.notifier.settings import QuietHours

NIGHT = QuietHours(start=time(22), end=time(8), timezone="Asia/Shanghai")


def utc(hour: int, minute: int = 0, day: int = 22) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "until"),
    [
        # Shanghai is UTC+8: 22:00 local is 14:00 UTC, 08:00 local is 00:00 UTC.
        (utc(13, 59), None),  # 21:59 local: not yet quiet
        (utc(14, 0), utc(0, 0, day=23)),  # 22:00 local: wait for tomorrow 08:00
        (utc(15, 30), utc(0, 0, day=23)),  # 23:30 local
        (utc(16, 30), utc(0, 0, day=23)),  # 00:30 local, the next day: same morning
        (utc(23, 59, day=21), utc(0, 0, day=22)),  # 07:59 local: one minute more
        (utc(0, 0), None),  # 08:00 local: the window is over
        (utc(6, 0), None),  # 14:00 local
    ],
)
def test_customer_messages_wait_for_the_end_of_quiet_hours(
    now: datetime, until: datetime | None
) -> None:
    assert quiet_until(now, NIGHT, "customer") == until


def test_a_window_within_one_day_and_another_time_zone() -> None:
    lunch = QuietHours(start=time(12), end=time(13, 30), timezone="Europe/London")
    assert quiet_until(utc(12, 10), lunch, "customer") == utc(13, 30)
    assert quiet_until(utc(13, 30), lunch, "customer") is None
    assert quiet_until(utc(11, 59), lunch, "customer") is None


def test_staff_are_not_held_unless_configured_and_p1_never_is() -> None:
    assert quiet_until(utc(15), NIGHT, "team", "P3") is None
    staff_too = NIGHT.model_copy(update={"staff": True})
    assert quiet_until(utc(15), staff_too, "team", "P3") == utc(0, 0, day=23)
    assert quiet_until(utc(15), staff_too, "person", "P1") is None
    assert quiet_until(utc(15), NIGHT.model_copy(update={"enabled": False}), "customer") is None


def test_an_unknown_time_zone_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        QuietHours(timezone="Mars/Olympus")


def test_backoff_doubles_up_to_the_cap_with_half_of_it_jittered() -> None:
    lowest = [retry_delay_s(n, 30, 3600, rand=lambda: 0.0) for n in range(1, 10)]
    highest = [retry_delay_s(n, 30, 3600, rand=lambda: 1.0) for n in range(1, 10)]
    assert highest == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert lowest == [delay / 2 for delay in highest]
    assert retry_delay_s(3, 30, 3600, rand=lambda: 0.5) == 90


def test_fixed_rate_windows() -> None:
    start, end = rate_window(utc(8, 0).replace(second=42), 60)
    assert (start, end) == (utc(8, 0), utc(8, 1))
    assert admitted(None, 1000, 5) == 5
    assert admitted(10, 7, 5) == 3
    assert admitted(10, 10, 5) == 0
    assert admitted(10, 12, 5) == 0


def test_dedup_key_is_the_message_not_the_request() -> None:
    key = dedup_key("customer", "c-1", "sms", "order.held", {"order_id": "o-1", "reason": "x"})
    assert key == dedup_key(
        "customer", "c-1", "sms", "order.held", {"reason": "x", "order_id": "o-1"}
    )
    assert key != dedup_key(
        "customer", "c-1", "email", "order.held", {"order_id": "o-1", "reason": "x"}
    )
    assert key != dedup_key(
        "customer", "c-2", "sms", "order.held", {"order_id": "o-1", "reason": "x"}
    )
    assert key != dedup_key(
        "customer", "c-1", "sms", "order.held", {"order_id": "o-1", "reason": "y"}
    )


def test_contacts_are_masked() -> None:
    assert mask_contact("13800138000") == "138****8000"
    assert mask_contact("li.lei@example.com") == "l*****@example.com"
    assert mask_contact(None) is None
