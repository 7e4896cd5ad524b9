"""The work items one batch of routed anomalies and clearances touches, as a book: read at once
(locked) by the handlers, changed here in memory one record after another exactly as the
records come, and written back at once (one statement per table). Pure, no I/O.

What a record finds is what the records before it in the batch left: a firing attaches to the
item an earlier firing of its group opened, a clearance clears an anomaly attached earlier in
the batch, a firing finds a clearance recorded earlier in the batch."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from orderguard.services.notifier.work_items import domain
from orderguard.services.notifier.work_items.domain import Anomaly, Entry, SlaPolicy, WorkItem

GroupOf = tuple[str, str]  # (team, group_key)


@dataclass(frozen=True, slots=True)
class ItemAnomaly:
    """A row of work_item_anomalies: one fingerprint on one item."""

    work_item_id: str
    fingerprint: str
    team: str
    rule: str
    severity: str
    summary: str
    labels: Mapping[str, str]
    event_time: datetime  # of the latest firing
    detected_at: datetime  # of the first firing
    fired: int = 1
    cleared_at: datetime | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.work_item_id, self.fingerprint)


@dataclass(frozen=True, slots=True)
class Firing:
    """A routed firing anomaly as a work item takes it."""

    team: str
    group_key: str
    anomaly: Anomaly
    detected_at: datetime
    event_id: str


@dataclass(frozen=True, slots=True)
class Changed:
    """What one record did to one item: the item after it and its new timeline entries."""

    item: WorkItem
    entries: list[Entry]


@dataclass
class WorkItemBook:
    """The items, anomaly rows and clearances a batch touches (as read), and its changes."""

    now: datetime
    policy: SlaPolicy
    # Every item read or opened, by id.
    items: dict[str, WorkItem] = field(default_factory=dict)
    # The latest item of each group a firing of the batch belongs to (None: the group has none).
    latest: dict[GroupOf, str | None] = field(default_factory=dict)
    # Every row of the batch's fingerprints, on any item.
    anomalies: dict[tuple[str, str], ItemAnomaly] = field(default_factory=dict)
    # The latest clearance (event time) of each of the batch's fingerprints.
    clearances: dict[str, datetime] = field(default_factory=dict)
    new_item_id: Callable[[], str] = field(default=lambda: str(uuid.uuid4()))
    # -- what the batch changed, to write back (items and rows in their final state)
    changed_items: dict[str, None] = field(default_factory=dict)
    changed_anomalies: dict[tuple[str, str], None] = field(default_factory=dict)
    changed_clearances: dict[str, None] = field(default_factory=dict)
    links: dict[tuple[str, str, str], None] = field(default_factory=dict)
    timeline: list[tuple[str, Entry]] = field(default_factory=list)

    # -- firing ------------------------------------------------------------------------------

    def fire(self, firing: Firing) -> Changed | None:
        """A routed group's anomaly opens or joins the group's item; the same anomaly again
        changes nothing (None); a cleared anomaly that fires again (later event time) counts
        again; one whose clearance overtook it arrives cleared."""
        now, policy, anomaly = self.now, self.policy, firing.anomaly
        cleared_by = self.clearances.get(anomaly.fingerprint)
        already_cleared = cleared_by is not None and cleared_by >= anomaly.event_time
        item = self._latest(firing.team, firing.group_key)
        if item is not None and domain.accepts_anomalies(item, now, policy):
            known = self.anomalies.get((item.id, anomaly.fingerprint))
            if known is None:
                item, entries = domain.attach(item, anomaly, now, policy)
                self._add_anomaly(item.id, firing)
            elif known.cleared_at is not None and not already_cleared:
                item, entries = domain.refire(item, anomaly, now, policy)
                refired = replace(known, cleared_at=None, fired=known.fired + 1)
                self._set_anomaly(replace(refired, event_time=anomaly.event_time))
            else:
                return None
        else:
            item, entries = domain.open_item(
                self.new_item_id(), firing.team, firing.group_key, anomaly, now, policy
            )
            self.latest[(firing.team, firing.group_key)] = item.id
            self._add_anomaly(item.id, firing)
        for kind, ref in domain.links_of(anomaly.labels):
            self.links[(item.id, kind, ref)] = None
        if already_cleared:
            # Its clearance overtook it (they travel different topics): it arrives cleared.
            self._clear_row(item.id, anomaly.fingerprint)
            item, more = domain.anomaly_cleared(item, anomaly.fingerprint, now, policy)
            entries += more
        return self._changed(item, entries)

    def _latest(self, team: str, group_key: str) -> WorkItem | None:
        item_id = self.latest.get((team, group_key))
        return None if item_id is None else self.items[item_id]

    def _add_anomaly(self, item_id: str, firing: Firing) -> None:
        anomaly = firing.anomaly
        self._set_anomaly(
            ItemAnomaly(
                work_item_id=item_id,
                fingerprint=anomaly.fingerprint,
                team=firing.team,
                rule=anomaly.rule,
                severity=anomaly.severity,
                summary=anomaly.summary,
                labels=dict(anomaly.labels),
                event_time=anomaly.event_time,
                detected_at=firing.detected_at,
            )
        )

    # -- clearing ----------------------------------------------------------------------------

    def clear(self, fingerprint: str, event_time: datetime) -> list[Changed]:
        """An anomaly resolved: cleared on every item where it still fires (and remembered, for
        a firing that has not landed yet). A clearance older than the firing it meets is
        ignored."""
        known = self.clearances.get(fingerprint)
        self.clearances[fingerprint] = event_time if known is None else max(known, event_time)
        self.changed_clearances[fingerprint] = None
        firing = sorted(
            (
                row
                for row in self.anomalies.values()
                if row.fingerprint == fingerprint and row.cleared_at is None
            ),
            key=lambda row: uuid.UUID(row.work_item_id),
        )
        changes = []
        for row in firing:
            if row.event_time > event_time:
                continue  # fired again after this clearance
            item = self.items.get(row.work_item_id)
            if item is None:
                continue
            self._clear_row(item.id, fingerprint)
            item, entries = domain.anomaly_cleared(item, fingerprint, self.now, self.policy)
            changes.append(self._changed(item, entries))
        return changes

    def _clear_row(self, item_id: str, fingerprint: str) -> None:
        row = self.anomalies[(item_id, fingerprint)]
        self._set_anomaly(replace(row, cleared_at=self.now))

    # -- what changed ------------------------------------------------------------------------

    def _changed(self, item: WorkItem, entries: list[Entry]) -> Changed:
        self.items[item.id] = item
        self.changed_items[item.id] = None
        self.timeline += [(item.id, entry) for entry in entries]
        return Changed(item, entries)

    def _set_anomaly(self, row: ItemAnomaly) -> None:
        self.anomalies[row.key] = row
        self.changed_anomalies[row.key] = None
