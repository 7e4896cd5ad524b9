"""Work item use cases, each inside the caller's unit of work: routed anomalies open or join
items, clearances clear them, people claim/resolve/dismiss/comment, jobs escalate and remind."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from orderguard.services.notifier.console import people
from orderguard.services.notifier.work_items import domain, repository
from orderguard.services.notifier.work_items.book import Firing, WorkItemBook
from orderguard.services.notifier.work_items.domain import (
    Anomaly,
    Entry,
    SlaPolicy,
    WorkItem,
)
from orderguard.shared import metrics
from orderguard.shared.engine import Event
from orderguard.shared.errors import Forbidden, Invalid, NotFound
from orderguard.shared.events.anomalies import AnomalyDetected, AnomalyRouted
from orderguard.shared.events.notifications import NotificationRequested, Recipient
from orderguard.shared.logging import get_logger
from orderguard.shared.topics import Topics
from orderguard.shared.uow import UnitOfWork

WORK_ITEMS_SOURCE = "/orderguard/notifier/work-items"

log = get_logger(__name__)


def _count(uow: UnitOfWork, team: str, transition: str) -> None:
    uow.after_commit(metrics.WORK_ITEM_TRANSITIONS.labels(team, transition).inc)


def _count_entries(uow: UnitOfWork, team: str, entries: list[Entry]) -> None:
    names = {
        "opened": "created",
        "anomaly attached": "attached",
        "claimed": "claimed",
        "dismissed": "dismissed",
        "reopened": "reopened",
        "escalated": "escalated",
        "reminder sent": "reminded",
        "reassigned": "reassigned",
    }
    for entry in entries:
        if entry.what == "resolved":
            _count(uow, team, "auto_resolved" if entry.details.get("auto") else "resolved")
        elif entry.what in names:
            _count(uow, team, names[entry.what])


async def _store(uow: UnitOfWork, topic: str, item: WorkItem, entries: list[Entry]) -> None:
    """Save the item and its new timeline entries; the changes others follow go out on
    `topic` (work_items.events) in the same transaction."""
    await repository.save(uow.conn, [item])
    await repository.add_timeline(uow.conn, [(item.id, entry) for entry in entries])
    _changed(uow, topic, item, entries)


def _changed(uow: UnitOfWork, topic: str, item: WorkItem, entries: list[Entry]) -> None:
    """Count and announce a change (its rows are written by the caller)."""
    _count_entries(uow, item.team, entries)
    _announce(uow, topic, item, entries)


def _announce(uow: UnitOfWork, topic: str, item: WorkItem, entries: list[Entry]) -> None:
    for entry in entries:
        event = domain.change_event(item, entry)
        if event is not None:
            uow.publish(topic, event, source=WORK_ITEMS_SOURCE, subject=item.id, key=item.id)


# ---- from the queues -----------------------------------------------------------------------


@dataclass(frozen=True)
class Routed:
    """A routed anomaly as a work item sees it: the team (from the queue topic) and the event."""

    team: str
    event: AnomalyRouted
    event_id: str

    @property
    def group_key(self) -> str:
        return self.event.group_key or self.event.anomaly.fingerprint

    @property
    def anomaly(self) -> Anomaly:
        anomaly = self.event.anomaly
        return Anomaly(
            fingerprint=anomaly.fingerprint,
            rule=anomaly.rule,
            severity=self.event.severity or anomaly.severity,
            summary=anomaly.summary,
            labels=anomaly.labels,
            event_time=anomaly.event_time,
        )

    @property
    def firing(self) -> Firing:
        return Firing(
            self.team, self.group_key, self.anomaly, self.event.anomaly.detected_at, self.event_id
        )


Clearance = tuple[str, datetime]  # (fingerprint, event time)


class WorkItems(WorkItemBook):
    """The book of one unit of work: read at once (locked), written back at once, its changes
    counted, announced on `events_topic` and logged as each record makes them."""

    def __init__(self, uow: UnitOfWork, policy: SlaPolicy, events_topic: str) -> None:
        super().__init__(uow.now, policy)
        self._uow = uow
        self._topic = events_topic

    async def load(self, firing: Sequence[Firing], clearing: Sequence[str]) -> None:
        """Lock the groups of the firings and those where a clearing fingerprint still fires;
        read their items, the fingerprints' rows and the firings' clearances."""
        conn = self._uow.conn
        groups = list(dict.fromkeys((f.team, f.group_key) for f in firing))
        clearing = list(dict.fromkeys(clearing))
        await repository.lock_groups(conn, groups, clearing)
        firing_groups = set(groups)
        for item in await repository.lock_items_of(conn, groups, clearing):
            self.items[item.id] = item
            group = (item.team, item.group_key)
            latest = self.latest.get(group)
            if group in firing_groups and (
                latest is None or item.created_at > self.items[latest].created_at
            ):
                self.latest[group] = item.id
        fingerprints = list(dict.fromkeys([f.anomaly.fingerprint for f in firing] + clearing))
        for row in await repository.lock_anomalies_of(conn, fingerprints):
            self.anomalies[row.key] = row
        if firing:
            self.clearances.update(
                await repository.clearances_of(conn, [f.anomaly.fingerprint for f in firing])
            )

    def fired(self, firing: Firing) -> None:
        changed = self.fire(firing)
        anomaly = firing.anomaly
        if changed is None:
            log.info(
                "routed anomaly already on its work item",
                work_item_id=self._latest_id(firing),
                fingerprint=anomaly.fingerprint,
                event_id=firing.event_id,
            )
            return
        item = changed.item
        _changed(self._uow, self._topic, item, changed.entries)
        log.info(
            "work item updated by a routed anomaly",
            work_item_id=item.id,
            team=item.team,
            state=str(item.state),
            fingerprint=anomaly.fingerprint,
            rule=anomaly.rule,
            event_id=firing.event_id,
        )

    def _latest_id(self, firing: Firing) -> str | None:
        return self.latest.get((firing.team, firing.group_key))

    def cleared(self, fingerprint: str, event_time: datetime) -> None:
        for changed in self.clear(fingerprint, event_time):
            item = changed.item
            _changed(self._uow, self._topic, item, changed.entries)
            log.info(
                "anomaly cleared on its work item",
                work_item_id=item.id,
                fingerprint=fingerprint,
                state=str(item.state),
                all_cleared=item.cleared_at is not None,
            )

    async def save(self) -> None:
        """Every changed row, one statement per table (items before the rows that name them)."""
        conn = self._uow.conn
        await repository.record_clearances(
            conn, {fp: self.clearances[fp] for fp in self.changed_clearances}
        )
        await repository.save(conn, [self.items[i] for i in self.changed_items])
        await repository.save_anomalies(conn, [self.anomalies[k] for k in self.changed_anomalies])
        await repository.add_links(conn, list(self.links))
        await repository.add_timeline(conn, self.timeline)


async def apply_routed(
    uow: UnitOfWork, policy: SlaPolicy, events_topic: str, batch: list[Routed]
) -> None:
    """Each routed group becomes (or joins) one work item of its team; the same anomaly twice
    changes nothing; a cleared anomaly that fires again (later event time) counts again."""
    book = WorkItems(uow, policy, events_topic)
    await book.load(
        [r.firing for r in batch if r.event.anomaly.status == "firing"],
        [r.event.anomaly.fingerprint for r in batch if r.event.anomaly.status == "resolved"],
    )
    for routed in batch:
        anomaly = routed.event.anomaly
        if anomaly.status == "resolved":
            # A router that forwards clearances: the same as one read from anomalies.detected.
            book.cleared(anomaly.fingerprint, anomaly.event_time)
        else:
            book.fired(routed.firing)
    await book.save()


async def open_work_items(
    uow: UnitOfWork,
    policy: SlaPolicy,
    events_topic: str,
    team_of: Mapping[str, str],
    batch: Sequence[Event],
) -> None:
    """Every routed group on `queues.<team>` becomes (or joins) a work item of that team.
    `team_of`: queue topic -> team, so the team is a bounded set whatever the event says."""
    await apply_routed(
        uow,
        policy,
        events_topic,
        [
            Routed(team_of[event.topic], event.data, event.id)
            for event in batch
            if isinstance(event.data, AnomalyRouted)
        ],
    )


async def clear_work_items(
    uow: UnitOfWork, policy: SlaPolicy, events_topic: str, batch: Sequence[Event]
) -> None:
    """Anomalies that resolve (stock recovered, parcel scanned again) clear their work items.
    The router routes firing anomalies only, so clearances are read where detectors write them."""
    await apply_clearances(
        uow,
        policy,
        events_topic,
        [
            (event.data.fingerprint, event.data.event_time)
            for event in batch
            if isinstance(event.data, AnomalyDetected) and event.data.status == "resolved"
        ],
    )


async def apply_clearances(
    uow: UnitOfWork, policy: SlaPolicy, events_topic: str, clearances: Sequence[Clearance]
) -> None:
    """Anomalies resolved: each cleared on every item where it still fires (and remembered, for
    a firing that has not landed yet). A clearance older than the firing it meets is ignored."""
    if not clearances:
        return
    book = WorkItems(uow, policy, events_topic)
    await book.load([], [fingerprint for fingerprint, _ in clearances])
    for fingerprint, event_time in clearances:
        book.cleared(fingerprint, event_time)
    await book.save()


# ---- people --------------------------------------------------------------------------------


class WorkItemNotFound(NotFound):
    def __init__(self, item_id: str) -> None:
        super().__init__("work item", item_id)


Change = Callable[[WorkItem], tuple[WorkItem, list[Entry]]]


def _named(entries: list[Entry], actor_name: str | None) -> list[Entry]:
    """The acting person's display name on what they did (not on the system's entries)."""
    if actor_name is None:
        return entries
    return [e if e.actor == domain.SYSTEM else replace(e, actor_name=actor_name) for e in entries]


async def _locked(uow: UnitOfWork, item_id: str) -> WorkItem:
    """The item, locked for this transaction's change; WorkItemNotFound (404) if there is none."""
    item = await repository.get(uow.conn, item_id, for_update=True)
    if item is None:
        raise WorkItemNotFound(item_id)
    return item


async def change(
    uow: UnitOfWork,
    events_topic: str,
    item_id: str,
    apply: Change,
    actor_name: str | None = None,
) -> WorkItem:
    """Apply a person's action to an item, locked; raises domain errors for illegal ones.
    `actor_name`: the person's display name, stored on the timeline with the entry."""
    item = await _locked(uow, item_id)
    item, entries = apply(item)
    entries = _named(entries, actor_name)
    if entries:
        await _store(uow, events_topic, item, entries)
    return item


async def reassign(
    uow: UnitOfWork,
    events_topic: str,
    policy: SlaPolicy,
    item_id: str,
    actor: str,
    lead: str | None,
    assignee: str,
    actor_name: str | None = None,
) -> WorkItem:
    """Give an item to `assignee` (a login). `lead` is the acting person's login: they must lead
    the item's team (or be an admin); None for a machine key, which its scope already allows.
    The assignee must be an enabled member of the item's team."""
    item = await _locked(uow, item_id)
    if lead is not None:
        acting = await people.by_login(uow.conn, lead)
        if acting is None or acting.disabled or not acting.leads(item.team):
            raise Forbidden(
                f"Only a lead of team {item.team} may reassign its work items.",
                slug="not-a-lead",
                team=item.team,
            )
    target = await people.by_login(uow.conn, assignee)
    if target is None or target.disabled or item.team not in target.teams:
        raise Invalid(
            f"{assignee} is not a member of team {item.team}.",
            slug="assignee-not-in-team",
            team=item.team,
            assignee=assignee,
        )
    item, entries = domain.reassign(item, actor, target.actor, uow.now, policy)
    entries = _named(entries, actor_name)
    if entries:
        await _store(uow, events_topic, item, entries)
    return item


async def comment(
    uow: UnitOfWork,
    events_topic: str,
    item_id: str,
    author: str,
    body: str,
    author_name: str | None = None,
) -> dict[str, Any]:
    item = await _locked(uow, item_id)
    created = await repository.add_comment(uow.conn, item_id, author, body, uow.now)
    entries = [Entry(uow.now, "commented", author, {"comment_id": str(created["id"])}, author_name)]
    await repository.add_timeline(uow.conn, [(item_id, entry) for entry in entries])
    _announce(uow, events_topic, item, entries)
    return created


# ---- jobs ----------------------------------------------------------------------------------


def _notify(
    uow: UnitOfWork,
    topic: str,
    item: WorkItem,
    template: str,
    request_id: str,
    params: dict[str, str],
) -> None:
    request = NotificationRequested(
        request_id=request_id,
        recipient=Recipient(kind="team", id=item.team),
        template=template,
        params={
            "work_item_id": item.id,
            "team": item.team,
            "tier": str(item.tier),
            "severity": item.severity,
            "title": item.title,
            **params,
        },
        requested_at=uow.now,
    )
    uow.publish(topic, request, source=WORK_ITEMS_SOURCE, subject=item.team)


async def escalate_due(uow: UnitOfWork, policy: SlaPolicy, topics: Topics, limit: int) -> int:
    """Escalate every item past its due time, once per due time even with several workers:
    rows are taken FOR UPDATE SKIP LOCKED and their next due time moves in the same commit."""
    items = await repository.due_for_escalation(uow.conn, uow.now, limit)
    for item in items:
        item, entries, escalation = domain.escalate(item, uow.now, policy)
        if escalation is None:
            # Nothing left to escalate (top tier reached by a config change): stop looking.
            await repository.save(uow.conn, [replace(item, next_escalation_at=None)])
            continue
        _notify(
            uow,
            topics.notification_requests,
            item,
            "work_item.escalated",
            # One request per item and tier: a retried run cannot notify twice.
            f"work_item.escalated:{item.id}:{escalation.tier}",
            {
                "missed": escalation.missed,
                "due_at": escalation.missed_due_at.isoformat(),
            },
        )
        await _store(uow, topics.work_items, item, entries)
        log.warning(
            "work item escalated",
            work_item_id=item.id,
            team=item.team,
            tier=escalation.tier,
            severity=escalation.severity,
            missed=escalation.missed,
        )
    return len(items)


async def remind_due(uow: UnitOfWork, policy: SlaPolicy, topics: Topics, limit: int) -> int:
    """Remind the team of urgent items still unclaimed, every `reminder_every`."""
    items = await repository.due_for_reminder(uow.conn, uow.now, limit)
    for item in items:
        due = item.next_reminder_at
        item, entry = domain.remind(item, uow.now, policy)
        if entry is None or due is None:
            await repository.save(uow.conn, [replace(item, next_reminder_at=None)])
            continue
        _notify(
            uow,
            topics.notification_requests,
            item,
            "work_item.reminder",
            f"work_item.reminder:{item.id}:{due.isoformat()}",
            {"claim_due_at": item.claim_due_at.isoformat()},
        )
        await _store(uow, topics.work_items, item, [entry])
    return len(items)


async def refresh_open_gauge(uow: UnitOfWork, teams: tuple[str, ...]) -> None:
    """Set the open-items gauge from the table (every team and severity, zeros included)."""
    counts = {(team, severity): n for team, severity, n in await repository.open_counts(uow.conn)}
    for team in teams:
        for severity in domain.SEVERITIES:
            metrics.WORK_ITEMS_OPEN.labels(team, severity).set(counts.get((team, severity), 0))
