"""Stage 4 of the router, route groups: their timers as a pure state machine (the pipeline
keeps it in its store, a table live, memory in a backtest).

A group is the set of anomalies one route collects under one `group_key` (the values of the
route's `group_by` labels). Its flushes publish the members that are new or changed (resolved)
since the last flush, one anomaly.routed.v1 each:

- the first flush comes `group_wait` after the group is created (0s: at once);
- a member added or resolved after a flush is published at the earliest `group_interval` after
  that flush (at once when that is already past);
- with nothing changed, the still-firing members are published again `repeat_interval` after
  the last flush — exactly: Alertmanager only looks at its groups every `group_interval`, so it
  rounds `repeat_interval` up to a multiple of it (a 5m interval and a 7m repeat repeat every
  10m); here a 7m repeat repeats at 7m;
- a flush that leaves no firing member closes the group (a new member later starts a new one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from orderguard.services.notifier.routing import GroupTimers


@dataclass(slots=True)
class Member:
    fingerprint: str
    firing: bool
    pending: bool  # added or resolved since the last flush
    severity: str = ""  # the member's severity on this route (after its raise)


@dataclass(slots=True)
class Group:
    key: str
    timers: GroupTimers
    created_at: datetime
    next_flush_at: datetime | None
    last_flush_at: datetime | None = None
    members: dict[str, Member] = field(default_factory=dict)
    # Where its flushes go: the route that made it, that route's queue and channels.
    route: str = ""
    queue: str = ""
    channels: tuple[str, ...] = ()
    flushes: int = 0

    @classmethod
    def new(
        cls,
        key: str,
        timers: GroupTimers,
        now: datetime,
        route: str = "",
        queue: str = "",
        channels: tuple[str, ...] = (),
    ) -> Group:
        return cls(
            key,
            timers,
            created_at=now,
            next_flush_at=now + timers.group_wait,
            route=route,
            queue=queue,
            channels=channels,
        )

    def add(self, fingerprint: str, now: datetime, severity: str = "") -> bool:
        """A firing member joins; False if it already belongs to the group."""
        if fingerprint in self.members:
            return False
        self.members[fingerprint] = Member(
            fingerprint, firing=True, pending=True, severity=severity
        )
        self._changed(now)
        return True

    def resolve(self, fingerprint: str, now: datetime) -> bool:
        """A member resolved; False if it is not a firing member."""
        member = self.members.get(fingerprint)
        if member is None or not member.firing:
            return False
        member.firing = False
        member.pending = True
        self._changed(now)
        return True

    def withdraw(self, fingerprint: str) -> bool:
        """A member leaves without a word (an inhibition that came after it); False if it is
        not a member."""
        return self.members.pop(fingerprint, None) is not None

    def _changed(self, now: datetime) -> None:
        if self.last_flush_at is None:
            return  # the first flush is group_wait after creation, whatever joins meanwhile
        earliest = max(now, self.last_flush_at + self.timers.group_interval)
        if self.next_flush_at is None or earliest < self.next_flush_at:
            self.next_flush_at = earliest

    def due(self, now: datetime) -> bool:
        return self.next_flush_at is not None and self.next_flush_at <= now

    def flush_kind(self) -> str:
        """What the next flush is: the first, an update (changes), or a repeat (none)."""
        if self.last_flush_at is None:
            return "first"
        return "update" if any(m.pending for m in self.members.values()) else "repeat"

    def flush(self, now: datetime) -> list[Member]:
        """The members to publish now (changed ones; else, on a repeat, every firing one).
        Afterwards resolved members leave the group, and the next flush is scheduled."""
        changed = [m for m in self.members.values() if m.pending]
        published = changed or [m for m in self.members.values() if m.firing]
        for member in changed:
            member.pending = False
        self.members = {fp: m for fp, m in self.members.items() if m.firing}
        self.last_flush_at = now
        self.flushes += 1
        repeat = self.timers.repeat_interval
        self.next_flush_at = now + repeat if self.members and repeat is not None else None
        return [Member(m.fingerprint, m.firing, True, m.severity) for m in published]

    @property
    def closed(self) -> bool:
        """Flushed with no firing member left: nothing more will come of it."""
        return self.last_flush_at is not None and not self.members
