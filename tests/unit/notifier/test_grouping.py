"""Group timers with an injected clock: group_wait, group_interval, repeat_interval exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orderguard.services.notifier.router.group import Group
from orderguard.services.notifier.routing import GroupTimers

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)


def published(group: Group, now: datetime) -> list[tuple[str, bool]]:
    assert group.due(now), f"not due at {now}: next {group.next_flush_at}"
    return [(m.fingerprint, m.firing) for m in group.flush(now)]


def test_group_wait_collects_members_before_the_first_flush() -> None:
    group = Group.new("g", GroupTimers(30 * S, 5 * M, None), T0)
    group.add("a", T0)
    group.add("b", T0 + 10 * S)
    assert not group.due(T0 + 29 * S)
    assert group.flush_kind() == "first"
    assert published(group, T0 + 30 * S) == [("a", True), ("b", True)]
    assert group.next_flush_at is None  # no repeat_interval: never again unless something changes


def test_a_member_added_after_a_flush_waits_for_group_interval() -> None:
    group = Group.new("g", GroupTimers(0 * S, 5 * M, None), T0)
    group.add("a", T0)
    assert published(group, T0) == [("a", True)]
    group.add("b", T0 + 1 * M)
    assert group.next_flush_at == T0 + 5 * M
    group.add("c", T0 + 2 * M)  # joins the same wait
    assert not group.due(T0 + 5 * M - S)
    assert group.flush_kind() == "update"
    assert published(group, T0 + 5 * M) == [("b", True), ("c", True)]
    # Long after the interval: a change is published at once.
    group.add("d", T0 + 20 * M)
    assert published(group, T0 + 20 * M) == [("d", True)]


def test_repeat_interval_is_exact_not_rounded_up_to_group_interval() -> None:
    # Alertmanager would repeat at 10m (the next group_interval tick after 7m); we repeat at 7m.
    group = Group.new("g", GroupTimers(0 * S, 5 * M, 7 * M), T0)
    group.add("a", T0)
    published(group, T0)
    assert group.next_flush_at == T0 + 7 * M
    assert not group.due(T0 + 7 * M - S)
    assert group.flush_kind() == "repeat"
    assert published(group, T0 + 7 * M) == [("a", True)]
    assert group.next_flush_at == T0 + 14 * M


def test_a_change_brings_the_next_flush_forward_but_never_before_group_interval() -> None:
    group = Group.new("g", GroupTimers(0 * S, 5 * M, 1 * timedelta(hours=4)), T0)
    group.add("a", T0)
    published(group, T0)
    assert group.next_flush_at == T0 + timedelta(hours=4)
    group.add("b", T0 + 1 * M)
    assert group.next_flush_at == T0 + 5 * M
    assert published(group, T0 + 5 * M) == [("b", True)]
    assert group.next_flush_at == T0 + 5 * M + timedelta(hours=4)


def test_resolution_is_published_and_the_last_one_closes_the_group() -> None:
    group = Group.new("g", GroupTimers(0 * S, 1 * M, 10 * M), T0)
    group.add("a", T0)
    group.add("b", T0)
    published(group, T0)
    assert group.resolve("a", T0 + 30 * S)
    assert not group.resolve("a", T0 + 31 * S)  # twice: nothing more
    assert not group.resolve("zzz", T0 + 31 * S)  # not a member
    assert published(group, T0 + 1 * M) == [("a", False)]
    assert list(group.members) == ["b"] and not group.closed
    group.resolve("b", T0 + 2 * M)
    assert published(group, T0 + 2 * M) == [("b", False)]
    assert group.closed and group.next_flush_at is None


def test_a_member_added_twice_counts_once() -> None:
    group = Group.new("g", GroupTimers(), T0)
    assert group.add("a", T0)
    assert not group.add("a", T0)
    assert published(group, T0) == [("a", True)]
