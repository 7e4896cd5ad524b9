"""The routing pipeline's memory in dictionaries: for backtests (and unit tests), where one
replay owns it all and nothing needs locking."""

from __future__ import annotations

from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from orderguard.services.notifier.router.group import Group
from orderguard.services.notifier.router.route import Destination
from orderguard.services.notifier.router.silence import Silence, Silenced
from orderguard.services.notifier.router.store import AnomalyState, Hold, Suppressed

T = TypeVar("T")


def run_now(step: Coroutine[Any, Any, T]) -> T:
    """Run a pipeline step over a MemoryStore to its end, synchronously: such a step never
    waits on anything (no I/O), so it needs no event loop and works inside a running one."""
    try:
        step.send(None)
    except StopIteration as done:
        return done.value
    step.close()
    raise RuntimeError("a pipeline step over the memory store waited on something")


@dataclass(slots=True)
class _Held:
    hold: Hold
    event_id: str
    released: bool = False


@dataclass(slots=True)
class _Routed:
    to: list[Destination]
    event_id: str


class MemoryStore:
    def __init__(self, silences: Sequence[Silence] = ()) -> None:
        self.silences = list(silences)
        self.states: dict[str, AnomalyState] = {}
        self.held: dict[str, _Held] = {}
        self.routed: dict[str, _Routed] = {}
        self.groups: dict[str, Group] = {}

    def next_due(self) -> datetime | None:
        """The next moment a group flushes or a silence that held something back ends."""
        flushes = [g.next_flush_at for g in self.groups.values() if g.next_flush_at is not None]
        ends = [
            held.hold.silence.ends_at
            for fingerprint, held in self.held.items()
            if isinstance(held.hold, Silenced)
            and not held.released
            and self.states[fingerprint].firing
        ]
        return min([*flushes, *ends], default=None)

    async def lock_states(self, fingerprints: Sequence[str]) -> dict[str, AnomalyState]:
        return await self.states_of(fingerprints)

    async def read_ahead(
        self, fingerprints: Sequence[str], resolving: Sequence[str], group_keys: Iterable[str]
    ) -> None:
        """Everything is at hand already."""

    async def write(self) -> None:
        """Every change is kept as it is made."""

    async def states_of(self, fingerprints: Sequence[str]) -> dict[str, AnomalyState]:
        return {fp: self.states[fp] for fp in fingerprints if fp in self.states}

    async def add_state(self, state: AnomalyState) -> None:
        self.states[state.fingerprint] = state

    async def update_state(self, state: AnomalyState) -> None:
        self.states[state.fingerprint] = state

    async def firing_with(
        self,
        labels: dict[str, str],
        exclude: str,
        after: str,
        limit: int,
        routed_only: bool = False,
    ) -> list[tuple[str, dict[str, str]]]:
        found = sorted(
            (fp, state.labels)
            for fp, state in self.states.items()
            if state.firing
            and fp != exclude
            and fp > after
            and (not routed_only or state.outcome == "routed")
            and all(state.labels.get(k) == v for k, v in labels.items())
        )
        return found[:limit]

    async def active_silences(self, now: datetime) -> list[Silence]:
        return [s for s in self.silences if s.state(now) == "active"]

    async def hold(self, fingerprint: str, hold: Hold, event_id: str) -> None:
        self.held[fingerprint] = _Held(hold, event_id)

    async def release(self, fingerprint: str) -> None:
        self.held[fingerprint].released = True

    def _suppressed(self, fingerprint: str, held: _Held) -> Suppressed:
        reason: Literal["silenced", "inhibited"] = (
            "silenced" if isinstance(held.hold, Silenced) else "inhibited"
        )
        return Suppressed(self.states[fingerprint], held.event_id, reason)

    async def lock_inhibited_by(self, source: str) -> list[Suppressed]:
        return [
            self._suppressed(fp, held)
            for fp, held in sorted(self.held.items())
            if not isinstance(held.hold, Silenced)
            and held.hold.source_fingerprint == source
            and not held.released
            and self.states[fp].firing
        ]

    async def lock_silenced_past_their_silence(self, now: datetime, limit: int) -> list[Suppressed]:
        return [
            self._suppressed(fp, held)
            for fp, held in sorted(self.held.items())
            if isinstance(held.hold, Silenced)
            and held.hold.silence.ends_at <= now
            and not held.released
            and self.states[fp].firing
        ][:limit]

    async def record_routed(
        self, fingerprint: str, rule: str, to: Sequence[Destination], event_id: str
    ) -> bool:
        if fingerprint in self.routed:
            return False
        self.routed[fingerprint] = _Routed(list(to), event_id)
        return True

    async def routed_resolved(self, fingerprint: str) -> list[Destination]:
        routed = self.routed.get(fingerprint)
        return list(routed.to) if routed is not None else []

    async def withdraw_routed(self, fingerprint: str) -> tuple[list[Destination], str]:
        routed = self.routed.pop(fingerprint)
        return routed.to, routed.event_id

    async def lock_group(self, key: str) -> Group | None:
        return self.groups.get(key)

    async def lock_due_groups(self, now: datetime, limit: int) -> list[Group]:
        due = sorted(
            (g for g in self.groups.values() if g.due(now)),
            key=lambda g: (g.next_flush_at, g.key),
        )
        return due[:limit]

    async def save_group(self, group: Group) -> None:
        if group.closed:
            self.groups.pop(group.key, None)
        else:
            self.groups[group.key] = group
