"""One timeline entry for every aggregate people follow (orders, cases, work items). Pure.

What happened, when, who did it, in their words (`note`), the state it moved between, the
event that told of it, and whatever else is worth keeping (`details`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from orderguard.shared.actor import Actor


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    what: str
    actor: Actor
    note: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    event_type: str | None = None
    event_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def told_by(self, event_type: str, event_id: str) -> TimelineEntry:
        return replace(self, event_type=event_type, event_id=event_id)
