"""What the routing pipeline keeps between anomalies, as a small interface: every anomaly it
has seen (its latest copy and what became of it), the anomalies held back and why, where
routed ones went, the active silences and the route groups. `PostgresStore` keeps it in the
notifier's tables (one transaction per batch, rows locked where the pipeline decides, read
ahead and written back set-based); `MemoryStore` in dictionaries (backtests)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, TypeAlias

from orderguard.services.notifier.router.group import Group
from orderguard.services.notifier.router.inhibit import Inhibition
from orderguard.services.notifier.router.route import Destination
from orderguard.services.notifier.router.silence import Silence, Silenced
from orderguard.shared.events.anomalies import AnomalyDetected

Outcome = Literal["routed", "silenced", "inhibited"]
Hold: TypeAlias = Silenced | Inhibition


@dataclass(frozen=True, slots=True)
class AnomalyState:
    """An anomaly as the router knows it: its latest copy (firing, later resolved), the labels
    matchers see, and what the pipeline did with it (None: resolved before it was seen
    firing)."""

    anomaly: AnomalyDetected
    labels: dict[str, str]
    outcome: Outcome | None
    traceparent: str | None

    @property
    def fingerprint(self) -> str:
        return self.anomaly.fingerprint

    @property
    def firing(self) -> bool:
        return self.anomaly.status == "firing"


@dataclass(frozen=True, slots=True)
class Suppressed:
    """A firing anomaly held back, with the anomaly.detected event that brought it."""

    state: AnomalyState
    event_id: str
    reason: Literal["silenced", "inhibited"]


class RouterStore(Protocol):
    """Reads that say `lock` hold what they return until the unit of work ends (live)."""

    async def lock_states(self, fingerprints: Sequence[str]) -> dict[str, AnomalyState]: ...

    async def read_ahead(
        self, fingerprints: Sequence[str], resolving: Sequence[str], group_keys: Iterable[str]
    ) -> None:
        """What a batch of arrivals will touch, read at once where that saves round trips:
        where these fingerprints went, the `resolving` ones' groups and the anomalies they
        hold back, and these route groups. Reads that were not made ahead are made when asked."""
        ...

    async def write(self) -> None:
        """Store the changes of a pipeline step (live: one statement per table)."""
        ...

    async def states_of(self, fingerprints: Sequence[str]) -> dict[str, AnomalyState]: ...

    async def add_state(self, state: AnomalyState) -> None: ...

    async def update_state(self, state: AnomalyState) -> None:
        """Its latest copy and outcome."""
        ...

    async def firing_with(
        self,
        labels: dict[str, str],
        exclude: str,
        after: str,
        limit: int,
        routed_only: bool = False,
    ) -> list[tuple[str, dict[str, str]]]:
        """Firing anomalies whose labels include these (fingerprint order, a page after
        `after`); `routed_only`: those routed, locked (the targets of a new source)."""
        ...

    async def active_silences(self, now: datetime) -> list[Silence]: ...

    async def hold(self, fingerprint: str, hold: Hold, event_id: str) -> None: ...

    async def release(self, fingerprint: str) -> None: ...

    async def lock_inhibited_by(self, source: str) -> list[Suppressed]:
        """Still-firing anomalies this source holds back, not yet released."""
        ...

    async def lock_silenced_past_their_silence(
        self, now: datetime, limit: int
    ) -> list[Suppressed]: ...

    async def record_routed(
        self, fingerprint: str, rule: str, to: Sequence[Destination], event_id: str
    ) -> bool:
        """False if it is routed already."""
        ...

    async def routed_resolved(self, fingerprint: str) -> list[Destination]:
        """Where a routed anomaly went, marking it resolved."""
        ...

    async def withdraw_routed(self, fingerprint: str) -> tuple[list[Destination], str]:
        """Where a routed anomaly went and the event that brought it; it is routed no more."""
        ...

    async def lock_group(self, key: str) -> Group | None: ...

    async def lock_due_groups(self, now: datetime, limit: int) -> list[Group]: ...

    async def save_group(self, group: Group) -> None:
        """Store its timers and members; a closed group goes."""
        ...
