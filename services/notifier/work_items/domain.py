"""Work items: what a team works on for one routed group of anomalies. Pure, no I/O.

The state machine, the SLA clock (claim-by and resolve-by from the severity), escalation
(tier 1 -> 2 -> 3, one severity step up each time), reminders for urgent items, anomalies
attached to and cleared from an item. Every function takes `now`, so tests drive the clock.

Decisions (also in the README):
- One live item per (team, group): a routed anomaly of the same group attaches to it.
- A group that fires again within `reopen_window` of its item being resolved reopens that
  item (flapping stays one item, counted in `reopened`); later, it starts a new item. A
  dismissed item swallows its group's anomalies for the window (they are attached and
  counted, the item stays dismissed): dismissing says "this is noise".
- When every anomaly of an item has cleared: an open (unclaimed) item resolves itself (nobody
  is on it and the condition is gone); a claimed item stays claimed, marked cleared, and
  waits for its claimant to confirm; neither escalates any more.
- Escalation stops at the top tier; reminders of urgent items go on until someone claims.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from orderguard.shared.errors import Conflict, IllegalTransition
from orderguard.shared.events import work_items as events

SEVERITIES = ("P1", "P2", "P3", "P4")
SYSTEM = "system"

# Anomaly labels that name a thing a work item links to, and the kind of thing.
LINK_LABELS: Mapping[str, str] = {
    "order_id": "order",
    "shipment_id": "shipment",
    "case_id": "case",
    "sku": "product",
    "customer_id": "customer",
}


class State(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"


class Action(StrEnum):
    CLAIM = "claim"
    RESOLVE = "resolve"
    DISMISS = "dismiss"
    REOPEN = "reopen"
    REASSIGN = "reassign"


# The whole state machine: what is not listed is illegal. Reopen is the system's, not a person's.
TRANSITIONS: Mapping[State, Mapping[Action, State]] = {
    State.OPEN: {
        Action.CLAIM: State.CLAIMED,
        Action.RESOLVE: State.RESOLVED,
        Action.DISMISS: State.DISMISSED,
        Action.REASSIGN: State.CLAIMED,
    },
    State.CLAIMED: {
        Action.RESOLVE: State.RESOLVED,
        Action.DISMISS: State.DISMISSED,
        Action.REASSIGN: State.CLAIMED,
    },
    State.RESOLVED: {Action.REOPEN: State.OPEN},
    State.DISMISSED: {},
}
LIVE = frozenset({State.OPEN, State.CLAIMED})


class ClaimedByAnother(Conflict):
    def __init__(self, item_id: str, claimed_by: str) -> None:
        super().__init__(
            f"Work item {item_id} is claimed by {claimed_by}.",
            slug="claimed-by-another",
            title="Work item is claimed by someone else",
            current_state="claimed",
            claimed_by=claimed_by,
        )
        self.item_id = item_id
        self.claimed_by = claimed_by


def priority_of(severity: str) -> int:
    """P1 -> 1 (first in a queue) ... P4 -> 4."""
    return SEVERITIES.index(severity) + 1


def raised(severity: str) -> str:
    """One step more urgent; P1 stays P1."""
    return SEVERITIES[max(SEVERITIES.index(severity) - 1, 0)]


def higher(a: str, b: str) -> str:
    return a if SEVERITIES.index(a) <= SEVERITIES.index(b) else b


@dataclass(frozen=True)
class SlaPolicy:
    """How fast each severity must be claimed and resolved, and the escalation ladder."""

    claim_within: Mapping[str, timedelta]
    resolve_within: Mapping[str, timedelta]
    reminder_every: timedelta = timedelta(minutes=15)
    urgent: frozenset[str] = frozenset({"P1", "P2"})
    reopen_window: timedelta = timedelta(hours=1)
    max_tier: int = 3

    def __post_init__(self) -> None:
        for name, table in (("claim", self.claim_within), ("resolve", self.resolve_within)):
            missing = [s for s in SEVERITIES if s not in table]
            if missing:
                raise ValueError(f"SLA has no {name} time for {', '.join(missing)}")
            for severity in SEVERITIES:
                if table[severity] <= timedelta(0):
                    raise ValueError(f"SLA {name} time of {severity} must be positive")
        if self.max_tier < 1:
            raise ValueError("max_tier must be at least 1")

    @classmethod
    def of_seconds(
        cls,
        claim_s: Mapping[str, float],
        resolve_s: Mapping[str, float],
        reminder_every_s: float,
        reopen_window_s: float,
        max_tier: int = 3,
    ) -> SlaPolicy:
        """From plain seconds per severity (settings, or the routing file's severity levels)."""
        return cls(
            claim_within={k: timedelta(seconds=v) for k, v in claim_s.items()},
            resolve_within={k: timedelta(seconds=v) for k, v in resolve_s.items()},
            reminder_every=timedelta(seconds=reminder_every_s),
            reopen_window=timedelta(seconds=reopen_window_s),
            max_tier=max_tier,
        )


@dataclass(frozen=True)
class Entry:
    """One line of an item's timeline."""

    at: datetime
    what: str
    actor: str
    details: Mapping[str, Any] = field(default_factory=dict)
    actor_name: str | None = None  # a person's display name at the time (stamped by handlers)


@dataclass(frozen=True)
class WorkItem:
    id: str
    team: str
    group_key: str
    state: State
    severity: str
    initial_severity: str
    tier: int
    title: str
    rules: tuple[str, ...]
    labels: Mapping[str, str]
    created_at: datetime
    claim_due_at: datetime
    resolve_due_at: datetime
    anomaly_count: int = 1
    open_anomalies: int = 1
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None
    close_reason: str | None = None
    cleared_at: datetime | None = None
    reopened: int = 0
    next_escalation_at: datetime | None = None
    next_reminder_at: datetime | None = None

    @property
    def priority(self) -> int:
        return priority_of(self.severity)

    @property
    def due_at(self) -> datetime | None:
        """The deadline that matters now: claim-by while open, resolve-by while claimed."""
        if self.state is State.OPEN:
            return self.claim_due_at
        if self.state is State.CLAIMED:
            return self.resolve_due_at
        return None


def _scheduled(item: WorkItem, policy: SlaPolicy, now: datetime) -> WorkItem:
    """Recompute when the item next escalates and next reminds, from its state."""
    escalation = None
    if item.cleared_at is None and item.tier < policy.max_tier:
        escalation = item.due_at
    reminder = None
    if item.state is State.OPEN and item.severity in policy.urgent:
        reminder = item.next_reminder_at or now + policy.reminder_every
    return replace(item, next_escalation_at=escalation, next_reminder_at=reminder)


def _move(item: WorkItem, action: Action) -> State:
    try:
        return TRANSITIONS[item.state][action]
    except KeyError:
        raise IllegalTransition(
            "work item", item.id, item.state, action, allowed_actions(item.state)
        ) from None


def allowed_actions(state: State) -> list[str]:
    return sorted(str(action) for action in TRANSITIONS[state] if action is not Action.REOPEN)


def accepts_anomalies(item: WorkItem, now: datetime, policy: SlaPolicy) -> bool:
    """Whether a newly routed anomaly of this item's group belongs to it (else: a new item)."""
    if item.state in LIVE:
        return True
    return item.closed_at is not None and now - item.closed_at <= policy.reopen_window


@dataclass(frozen=True)
class Anomaly:
    """What a work item keeps of a routed anomaly."""

    fingerprint: str
    rule: str
    severity: str  # after the route
    summary: str
    labels: Mapping[str, str]
    event_time: datetime


def open_item(
    item_id: str, team: str, group_key: str, anomaly: Anomaly, now: datetime, policy: SlaPolicy
) -> tuple[WorkItem, list[Entry]]:
    severity = anomaly.severity
    item = WorkItem(
        id=item_id,
        team=team,
        group_key=group_key,
        state=State.OPEN,
        severity=severity,
        initial_severity=severity,
        tier=1,
        title=anomaly.summary,
        rules=(anomaly.rule,),
        labels=dict(anomaly.labels),
        created_at=now,
        claim_due_at=now + policy.claim_within[severity],
        resolve_due_at=now + policy.resolve_within[severity],
    )
    entry = Entry(
        now,
        "opened",
        SYSTEM,
        {
            "fingerprint": anomaly.fingerprint,
            "rule": anomaly.rule,
            "severity": severity,
            "claim_due_at": item.claim_due_at.isoformat(),
            "resolve_due_at": item.resolve_due_at.isoformat(),
        },
    )
    return _scheduled(item, policy, now), [entry]


def _reopen(item: WorkItem, now: datetime, policy: SlaPolicy, why: str) -> tuple[WorkItem, Entry]:
    state = _move(item, Action.REOPEN)
    item = replace(
        item,
        state=state,
        claimed_by=None,
        claimed_at=None,
        closed_at=None,
        closed_by=None,
        close_reason=None,
        cleared_at=None,
        reopened=item.reopened + 1,
        claim_due_at=now + policy.claim_within[item.severity],
        resolve_due_at=now + policy.resolve_within[item.severity],
        next_reminder_at=None,
    )
    return _scheduled(item, policy, now), Entry(now, "reopened", SYSTEM, {"why": why})


def _fired(
    item: WorkItem, anomaly: Anomaly, now: datetime, policy: SlaPolicy, new: bool
) -> tuple[WorkItem, list[Entry]]:
    entries = [
        Entry(
            now,
            "anomaly attached" if new else "anomaly fired again",
            SYSTEM,
            {"fingerprint": anomaly.fingerprint, "rule": anomaly.rule},
        )
    ]
    severity = higher(item.severity, anomaly.severity) if item.state in LIVE else item.severity
    item = replace(
        item,
        anomaly_count=item.anomaly_count + (1 if new else 0),
        open_anomalies=item.open_anomalies + 1,
        rules=item.rules if anomaly.rule in item.rules else (*item.rules, anomaly.rule),
        cleared_at=None,
    )
    if severity != item.severity:
        entries.append(
            Entry(now, "severity raised", SYSTEM, {"from": item.severity, "to": severity})
        )
        item = replace(
            item,
            severity=severity,
            claim_due_at=min(item.claim_due_at, item.created_at + policy.claim_within[severity]),
            resolve_due_at=min(
                item.resolve_due_at, item.created_at + policy.resolve_within[severity]
            ),
        )
    if item.state is State.RESOLVED:
        item, entry = _reopen(item, now, policy, f"{anomaly.rule} fired again")
        entries.append(entry)
    return _scheduled(item, policy, now), entries


def attach(
    item: WorkItem, anomaly: Anomaly, now: datetime, policy: SlaPolicy
) -> tuple[WorkItem, list[Entry]]:
    """A new anomaly of the item's group (callers check `accepts_anomalies` first)."""
    return _fired(item, anomaly, now, policy, new=True)


def refire(
    item: WorkItem, anomaly: Anomaly, now: datetime, policy: SlaPolicy
) -> tuple[WorkItem, list[Entry]]:
    """An anomaly of the item that had cleared fires again."""
    return _fired(item, anomaly, now, policy, new=False)


def anomaly_cleared(
    item: WorkItem, fingerprint: str, now: datetime, policy: SlaPolicy
) -> tuple[WorkItem, list[Entry]]:
    """One of the item's firing anomalies cleared; the last one clears the item."""
    left = max(item.open_anomalies - 1, 0)
    item = replace(item, open_anomalies=left)
    entries = [Entry(now, "anomaly cleared", SYSTEM, {"fingerprint": fingerprint})]
    if left == 0 and item.state in LIVE:
        item = replace(item, cleared_at=now)
        if item.state is State.OPEN:
            item = replace(
                item,
                state=_move(item, Action.RESOLVE),
                closed_at=now,
                closed_by=SYSTEM,
                close_reason="all anomalies cleared",
            )
            entries.append(
                Entry(now, "resolved", SYSTEM, {"reason": "all anomalies cleared", "auto": True})
            )
        else:
            entries.append(Entry(now, "cleared — confirm", SYSTEM, {"claimed_by": item.claimed_by}))
    return _scheduled(item, policy, now), entries


def claim(
    item: WorkItem, actor: str, now: datetime, policy: SlaPolicy
) -> tuple[WorkItem, list[Entry]]:
    """Claim an open item. Claiming one's own claim again changes nothing."""
    if item.state is State.CLAIMED:
        if item.claimed_by == actor:
            return item, []
        raise ClaimedByAnother(item.id, item.claimed_by or "someone")
    state = _move(item, Action.CLAIM)
    item = replace(item, state=state, claimed_by=actor, claimed_at=now, next_reminder_at=None)
    return _scheduled(item, policy, now), [Entry(now, "claimed", actor)]


def resolve(
    item: WorkItem, actor: str, reason: str | None, now: datetime, policy: SlaPolicy
) -> tuple[WorkItem, list[Entry]]:
    state = _move(item, Action.RESOLVE)
    item = replace(item, state=state, closed_at=now, closed_by=actor, close_reason=reason or None)
    return _scheduled(item, policy, now), [Entry(now, "resolved", actor, {"reason": reason})]


def dismiss(
    item: WorkItem, actor: str, reason: str, now: datetime, policy: SlaPolicy
) -> tuple[WorkItem, list[Entry]]:
    if not reason.strip():
        raise ValueError("dismissing needs a reason")
    state = _move(item, Action.DISMISS)
    item = replace(item, state=state, closed_at=now, closed_by=actor, close_reason=reason)
    return _scheduled(item, policy, now), [Entry(now, "dismissed", actor, {"reason": reason})]


def reassign(
    item: WorkItem, actor: str, assignee: str, now: datetime, policy: SlaPolicy
) -> tuple[WorkItem, list[Entry]]:
    """A lead gives a live item to `assignee` (claimed in their name; an open item becomes
    claimed). Who may, and to whom, is checked by the caller (handlers.reassign). Giving it to
    its claimant again changes nothing."""
    if item.state is State.CLAIMED and item.claimed_by == assignee:
        return item, []
    state = _move(item, Action.REASSIGN)
    previous = item.claimed_by
    item = replace(item, state=state, claimed_by=assignee, claimed_at=now, next_reminder_at=None)
    entry = Entry(now, "reassigned", actor, {"from": previous, "to": assignee})
    return _scheduled(item, policy, now), [entry]


@dataclass(frozen=True)
class Escalation:
    """What an escalation tells people: which tier, why, and by when it is now due."""

    tier: int
    severity: str
    missed: str  # "claim" or "resolve"
    missed_due_at: datetime


def escalate(
    item: WorkItem, now: datetime, policy: SlaPolicy
) -> tuple[WorkItem, list[Entry], Escalation | None]:
    """Escalate an item whose due time has passed: next tier, one severity step up, a new due
    time for the phase it missed. Not due (or nothing to escalate): unchanged, None."""
    due = item.next_escalation_at
    if due is None or due > now or item.state not in LIVE or item.tier >= policy.max_tier:
        return item, [], None
    missed = "claim" if item.state is State.OPEN else "resolve"
    severity = raised(item.severity)
    tier = item.tier + 1
    if missed == "claim":
        item = replace(item, claim_due_at=now + policy.claim_within[severity])
    else:
        item = replace(item, resolve_due_at=now + policy.resolve_within[severity])
    item = replace(item, tier=tier, severity=severity)
    escalation = Escalation(tier, severity, missed, due)
    entry = Entry(
        now,
        "escalated",
        SYSTEM,
        {
            "tier": tier,
            "severity": severity,
            "missed": missed,
            "missed_due_at": due.isoformat(),
            "notified": f"{item.team} tier {tier}",
        },
    )
    return _scheduled(item, policy, now), [entry], escalation


def remind(item: WorkItem, now: datetime, policy: SlaPolicy) -> tuple[WorkItem, Entry | None]:
    """An urgent item still unclaimed at its reminder time: remind, and schedule the next one."""
    due = item.next_reminder_at
    if due is None or due > now or item.state is not State.OPEN:
        return item, None
    item = replace(item, next_reminder_at=now + policy.reminder_every)
    return item, Entry(now, "reminder sent", SYSTEM, {"tier": item.tier})


def links_of(labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """(kind, id) of the orders, shipments, cases, products and customers an anomaly names."""
    return [(kind, labels[label]) for label, kind in LINK_LABELS.items() if labels.get(label)]


# Timeline entries other systems hear of, as work_item.*.v1 events (the rest stay internal).
_ANNOUNCED: Mapping[str, type[events.WorkItemChange]] = {
    "opened": events.WorkItemOpened,
    "claimed": events.WorkItemClaimed,
    "commented": events.WorkItemCommented,
    "escalated": events.WorkItemEscalated,
    "resolved": events.WorkItemResolved,
    "dismissed": events.WorkItemDismissed,
    "reopened": events.WorkItemReopened,
    "reassigned": events.WorkItemReassigned,
}


def change_event(item: WorkItem, entry: Entry) -> events.WorkItemChange | None:
    """The event a timeline entry announces, with the item as it is after the change."""
    model = _ANNOUNCED.get(entry.what)
    if model is None:
        return None
    details = entry.details
    extra: dict[str, Any] = {}
    if model is events.WorkItemCommented:
        extra = {"comment_id": details.get("comment_id")}
    elif model is events.WorkItemEscalated:
        extra = {"missed": details.get("missed"), "missed_due_at": details.get("missed_due_at")}
    elif model is events.WorkItemResolved:
        extra = {"auto": bool(details.get("auto", False))}
    elif model is events.WorkItemReassigned:
        extra = {"assignee": details["to"], "previous_assignee": details.get("from")}
    return model(
        work_item_id=item.id,
        team=item.team,
        group_key=item.group_key,
        title=item.title,
        state=item.state.value,
        severity=item.severity,
        tier=item.tier,
        due_at=item.due_at,
        actor=entry.actor,
        actor_name=entry.actor_name,
        at=entry.at,
        **extra,
    )
