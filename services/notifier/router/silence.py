"""Stage 1 of the router, silences: matchers that mute anomalies for a time window, with an
author and a comment. Pure; the notifier stores them (`repository`) and serves them
(`routing_api`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from orderguard.services.notifier.routing import Matcher

SilenceState = Literal["pending", "active", "expired"]


@dataclass(frozen=True, slots=True)
class Silence:
    id: uuid.UUID
    matchers: tuple[Matcher, ...]
    author: str
    comment: str
    starts_at: datetime
    ends_at: datetime
    created_at: datetime

    def state(self, now: datetime) -> SilenceState:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def mutes(self, labels: Mapping[str, str], now: datetime) -> bool:
        return self.state(now) == "active" and all(m.matches(labels) for m in self.matchers)


def silencing(
    silences: Iterable[Silence], labels: Mapping[str, str], now: datetime
) -> Silence | None:
    """The first active silence (oldest first) that mutes these labels, if any."""
    for silence in sorted(silences, key=lambda s: (s.created_at, str(s.id))):
        if silence.mutes(labels, now):
            return silence
    return None


@dataclass(frozen=True, slots=True)
class Silenced:
    """The silence stage's decision: this silence mutes the anomaly."""

    silence: Silence
