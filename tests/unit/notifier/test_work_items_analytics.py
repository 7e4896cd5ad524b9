"""Analytics buckets line up with PostgreSQL's date_trunc in UTC, so zero-filling is exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from orderguard.services.notifier.work_items.analytics import (
    ANOMALY_DIMENSIONS,
    WORK_ITEM_DIMENSIONS,
    bucket_starts,
)

T = datetime(2026, 11, 19, 10, 35, tzinfo=UTC)  # a Thursday


def test_hour_buckets_start_on_the_hour_and_cover_the_range() -> None:
    starts = bucket_starts("hour", T, T + timedelta(hours=2))
    assert starts == [T.replace(minute=0) + timedelta(hours=h) for h in range(3)]


def test_day_and_week_buckets_start_at_utc_midnight_and_on_monday() -> None:
    local = T.astimezone(timezone(timedelta(hours=8)))  # 18:35 in Shanghai, the same instant
    assert bucket_starts("day", local, T + timedelta(hours=1)) == [
        datetime(2026, 11, 19, tzinfo=UTC)
    ]
    assert bucket_starts("week", T, T + timedelta(days=7)) == [
        datetime(2026, 11, 16, tzinfo=UTC),
        datetime(2026, 11, 23, tzinfo=UTC),
    ]


def test_an_empty_range_has_no_buckets() -> None:
    assert bucket_starts("hour", T.replace(minute=0), T.replace(minute=0)) == []


def test_every_dimension_maps_to_sql_not_to_user_input() -> None:
    # The API offers exactly these; anything else is a 422 before SQL is built.
    assert set(ANOMALY_DIMENSIONS) == {
        "rule",
        "team",
        "severity",
        "reason",
        "sku",
        "warehouse",
        "carrier",
        "channel",
    }
    assert set(WORK_ITEM_DIMENSIONS) == set(ANOMALY_DIMENSIONS) | {"state"}
