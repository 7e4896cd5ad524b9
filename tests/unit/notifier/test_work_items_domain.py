"""The work item state machine, SLA clock, escalation, reminders, grouping and clearing, driven
by an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderguard.services.notifier.work_items import domain
from orderguard.services.notifier.work_items.domain import (
    Anomaly,
    ClaimedByAnother,
    SlaPolicy,
    State,
)
from orderguard.shared.errors import IllegalTransition

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
POLICY = SlaPolicy.of_seconds(
    {"P1": 1800, "P2": 7200, "P3": 28800, "P4": 86400},
    {"P1": 14400, "P2": 86400, "P3": 172800, "P4": 259200},
    reminder_every_s=600,
    reopen_window_s=3600,
)


def anomaly(fingerprint: str = "fp-1", severity: str = "P3", rule: str = "stock.low") -> Anomaly:
    return Anomaly(
        fingerprint=fingerprint,
        rule=rule,
        severity=severity,
        summary="SKU-1 low in main",
        labels={"sku": "SKU-1", "warehouse": "main", "order_id": "o-1"},
        event_time=T0,
    )


def opened(severity: str = "P3") -> domain.WorkItem:
    item, entries = domain.open_item(
        "wi-1", "warehouse", "g-1", anomaly(severity=severity), T0, POLICY
    )
    assert [e.what for e in entries] == ["opened"]
    return item


def test_an_item_opens_with_due_times_and_priority_from_its_severity() -> None:
    item = opened("P1")
    assert item.state is State.OPEN and item.priority == 1 and item.tier == 1
    assert item.claim_due_at == T0 + timedelta(minutes=30)
    assert item.resolve_due_at == T0 + timedelta(hours=4)
    assert item.next_escalation_at == item.claim_due_at == item.due_at
    assert item.next_reminder_at == T0 + 10 * MIN  # P1 is urgent
    assert opened("P4").next_reminder_at is None
    assert opened("P4").resolve_due_at == T0 + timedelta(days=3)


def test_claim_then_resolve_and_the_due_time_follows_the_phase() -> None:
    item, entries = domain.claim(opened("P2"), "alice", T0 + MIN, POLICY)
    assert (item.state, item.claimed_by, [e.what for e in entries]) == (
        State.CLAIMED,
        "alice",
        ["claimed"],
    )
    assert item.next_escalation_at == item.resolve_due_at and item.next_reminder_at is None
    item, entries = domain.resolve(item, "alice", "restocked", T0 + 2 * MIN, POLICY)
    assert (item.state, item.close_reason, item.closed_by) == (State.RESOLVED, "restocked", "alice")
    assert item.next_escalation_at is None and item.due_at is None


def test_claiming_ones_own_claim_is_a_no_op_and_anothers_claim_is_refused() -> None:
    item, _ = domain.claim(opened(), "alice", T0, POLICY)
    same, entries = domain.claim(item, "alice", T0 + MIN, POLICY)
    assert same == item and entries == []
    with pytest.raises(ClaimedByAnother, match="claimed by alice"):
        domain.claim(item, "bob", T0 + MIN, POLICY)


@pytest.mark.parametrize(
    ("close", "action"),
    [
        (
            lambda i: domain.resolve(i, "a", None, T0, POLICY),
            lambda i: domain.claim(i, "b", T0, POLICY),
        ),
        (
            lambda i: domain.dismiss(i, "a", "noise", T0, POLICY),
            lambda i: domain.resolve(i, "b", None, T0, POLICY),
        ),
        (
            lambda i: domain.dismiss(i, "a", "noise", T0, POLICY),
            lambda i: domain.dismiss(i, "b", "x", T0, POLICY),
        ),
        (
            lambda i: domain.resolve(i, "a", None, T0, POLICY),
            lambda i: domain.dismiss(i, "b", "x", T0, POLICY),
        ),
    ],
)
def test_closed_items_refuse_peoples_actions_naming_their_state(close, action) -> None:  # type: ignore[no-untyped-def]
    closed, _ = close(opened())
    with pytest.raises(IllegalTransition, match=f"is {closed.state}"):
        action(closed)


def test_dismissing_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="reason"):
        domain.dismiss(opened(), "a", "  ", T0, POLICY)


def test_allowed_actions_never_offer_reopen() -> None:
    assert domain.allowed_actions(State.OPEN) == ["claim", "dismiss", "reassign", "resolve"]
    assert domain.allowed_actions(State.RESOLVED) == []


def test_unclaimed_past_claim_due_escalates_once_per_due_time_up_to_the_top_tier() -> None:
    item = opened("P3")
    not_yet, entries, escalation = domain.escalate(item, item.claim_due_at - MIN, POLICY)
    assert escalation is None and entries == [] and not_yet == item

    due = item.claim_due_at
    item, entries, escalation = domain.escalate(item, due, POLICY)
    assert escalation == domain.Escalation(2, "P2", "claim", due)
    assert (item.tier, item.severity, item.priority) == (2, "P2", 2)
    assert item.claim_due_at == due + timedelta(hours=2)  # P2's claim time, from now
    assert [e.what for e in entries] == ["escalated"]
    assert entries[0].details["notified"] == "warehouse tier 2"
    # Now urgent: reminders start.
    assert item.next_reminder_at == due + 10 * MIN
    # The same moment again: nothing more (the next due time moved on).
    again, _, none = domain.escalate(item, due, POLICY)
    assert none is None and again == item

    item, _, escalation = domain.escalate(item, item.claim_due_at, POLICY)
    assert escalation is not None and (item.tier, item.severity) == (3, "P1")
    assert item.next_escalation_at is None  # top tier: escalation stops
    last, _, none = domain.escalate(item, item.claim_due_at + timedelta(days=1), POLICY)
    assert none is None and last.tier == 3


def test_claimed_past_resolve_due_escalates_the_resolve_phase() -> None:
    item, _ = domain.claim(opened("P4"), "alice", T0 + MIN, POLICY)
    due = item.resolve_due_at
    item, _, escalation = domain.escalate(item, due + MIN, POLICY)
    assert escalation is not None and escalation.missed == "resolve"
    assert item.state is State.CLAIMED and item.resolve_due_at == due + MIN + timedelta(days=2)
    assert item.next_reminder_at is None  # reminders are for unclaimed items


def test_reminders_repeat_for_urgent_unclaimed_items_until_claimed() -> None:
    item = opened("P2")
    assert domain.remind(item, T0 + 9 * MIN, POLICY) == (item, None)
    item, entry = domain.remind(item, T0 + 10 * MIN, POLICY)
    assert entry is not None and item.next_reminder_at == T0 + 20 * MIN
    item, _ = domain.claim(item, "alice", T0 + 11 * MIN, POLICY)
    assert item.next_reminder_at is None
    assert domain.remind(item, T0 + 30 * MIN, POLICY)[1] is None


def test_more_anomalies_of_the_group_attach_count_and_raise_severity() -> None:
    item = opened("P3")
    item, entries = domain.attach(item, anomaly("fp-2", "P1", "stock.out"), T0 + MIN, POLICY)
    assert (item.anomaly_count, item.open_anomalies) == (2, 2)
    assert item.rules == ("stock.low", "stock.out")
    assert item.severity == "P1" and item.initial_severity == "P3"
    assert item.claim_due_at == T0 + timedelta(minutes=30)  # P1's clock from when it opened
    assert [e.what for e in entries] == ["anomaly attached", "severity raised"]


def test_the_last_anomaly_to_clear_resolves_an_unclaimed_item() -> None:
    item, _ = domain.attach(opened(), anomaly("fp-2"), T0, POLICY)
    item, entries = domain.anomaly_cleared(item, "fp-1", T0 + MIN, POLICY)
    assert item.state is State.OPEN and item.open_anomalies == 1 and item.cleared_at is None
    item, entries = domain.anomaly_cleared(item, "fp-2", T0 + 2 * MIN, POLICY)
    assert item.state is State.RESOLVED and item.closed_by == domain.SYSTEM
    assert item.close_reason == "all anomalies cleared"
    assert [e.what for e in entries] == ["anomaly cleared", "resolved"]
    assert item.next_escalation_at is None


def test_a_cleared_claimed_item_waits_for_confirmation_and_stops_escalating() -> None:
    item, _ = domain.claim(opened(), "alice", T0, POLICY)
    item, entries = domain.anomaly_cleared(item, "fp-1", T0 + MIN, POLICY)
    assert item.state is State.CLAIMED and item.cleared_at == T0 + MIN
    assert [e.what for e in entries] == ["anomaly cleared", "cleared — confirm"]
    assert item.next_escalation_at is None
    assert domain.escalate(item, item.resolve_due_at + MIN, POLICY)[2] is None
    # It fires again: the clock is back.
    item, _ = domain.refire(item, anomaly(), T0 + 5 * MIN, POLICY)
    assert item.cleared_at is None and item.next_escalation_at == item.resolve_due_at
    assert item.anomaly_count == 1 and item.open_anomalies == 1


def test_a_resolved_group_firing_within_the_window_reopens_later_it_starts_anew() -> None:
    item, _ = domain.resolve(opened(), "alice", "fixed", T0, POLICY)
    assert domain.accepts_anomalies(item, T0 + timedelta(minutes=59), POLICY)
    assert not domain.accepts_anomalies(item, T0 + timedelta(minutes=61), POLICY)
    item, entries = domain.attach(item, anomaly("fp-2"), T0 + 30 * MIN, POLICY)
    assert item.state is State.OPEN and item.reopened == 1 and item.claimed_by is None
    assert item.claim_due_at == T0 + 30 * MIN + timedelta(hours=8)
    assert [e.what for e in entries] == ["anomaly attached", "reopened"]


def test_a_dismissed_item_swallows_its_groups_anomalies_for_the_window() -> None:
    item, _ = domain.dismiss(opened(), "alice", "planned stock-out", T0, POLICY)
    item, _ = domain.attach(item, anomaly("fp-2", "P1"), T0 + MIN, POLICY)
    assert item.state is State.DISMISSED and item.anomaly_count == 2 and item.severity == "P3"
    assert item.next_escalation_at is None and item.next_reminder_at is None


def test_links_come_from_identity_labels() -> None:
    assert domain.links_of({"order_id": "o-1", "sku": "S", "warehouse": "main", "case_id": ""}) == [
        ("order", "o-1"),
        ("product", "S"),
    ]


def test_an_sla_policy_must_cover_every_severity_with_positive_times() -> None:
    with pytest.raises(ValueError, match="no claim time for P4"):
        SlaPolicy.of_seconds({"P1": 1, "P2": 1, "P3": 1}, POLICY_RESOLVE, 60, 60)
    with pytest.raises(ValueError, match="P2 must be positive"):
        SlaPolicy.of_seconds({"P1": 1, "P2": 0, "P3": 1, "P4": 1}, POLICY_RESOLVE, 60, 60)


POLICY_RESOLVE = {"P1": 1.0, "P2": 1.0, "P3": 1.0, "P4": 1.0}


def test_the_changes_others_follow_become_events_with_the_item_after_the_change() -> None:
    item, entries = domain.claim(opened("P2"), "alice", T0 + MIN, POLICY)
    claimed = domain.change_event(item, entries[0])
    assert claimed is not None
    assert (claimed.work_item_id, claimed.state, claimed.actor, claimed.due_at) == (
        "wi-1",
        "claimed",
        "alice",
        item.resolve_due_at,
    )
    escalated, escalation_entries, _ = domain.escalate(opened(), T0 + timedelta(hours=9), POLICY)
    event = domain.change_event(escalated, escalation_entries[0])
    assert event is not None and event.model_dump(include={"tier", "severity", "missed"}) == {
        "tier": 2,
        "severity": "P2",
        "missed": "claim",
    }
    reminder = domain.Entry(T0, "reminder sent", domain.SYSTEM, {"tier": 1})
    assert domain.change_event(item, reminder) is None  # internal: not announced


def test_a_lead_reassigns_a_live_item_on_the_timeline_and_in_an_event() -> None:
    # An open item given to someone is claimed in their name, its due time the resolve-by.
    item, entries = domain.reassign(opened("P1"), "person:lead", "person:wang", T0 + MIN, POLICY)
    assert (item.state, item.claimed_by, item.claimed_at) == (
        State.CLAIMED,
        "person:wang",
        T0 + MIN,
    )
    assert item.due_at == item.resolve_due_at and item.next_reminder_at is None
    assert [(e.what, e.actor, dict(e.details)) for e in entries] == [
        ("reassigned", "person:lead", {"from": None, "to": "person:wang"})
    ]
    # A claimed item moves from its claimant to another.
    item, entries = domain.reassign(item, "person:lead", "person:li", T0 + 2 * MIN, POLICY)
    assert item.claimed_by == "person:li" and entries[0].details == {
        "from": "person:wang",
        "to": "person:li",
    }
    event = domain.change_event(item, entries[0])
    assert event is not None and event.model_dump(
        include={"state", "actor", "assignee", "previous_assignee"}
    ) == {
        "state": "claimed",
        "actor": "person:lead",
        "assignee": "person:li",
        "previous_assignee": "person:wang",
    }
    # To its claimant again: nothing happens.
    same, entries = domain.reassign(item, "person:lead", "person:li", T0 + 3 * MIN, POLICY)
    assert same == item and entries == []


def test_closed_items_cannot_be_reassigned() -> None:
    resolved, _ = domain.resolve(opened(), "a", None, T0, POLICY)
    with pytest.raises(IllegalTransition, match="is resolved"):
        domain.reassign(resolved, "person:lead", "person:wang", T0, POLICY)
