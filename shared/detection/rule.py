"""Pure detector rules: state + event + clock -> new state + anomalies. No I/O here.

The same rule runs under the engine (`detection/consumer.py`), backtests, unit tests and the
faust driver; the fingerprint makes its anomalies collapse downstream whichever ran it.

A rule that finds absences (no scan for N hours, an SLA about to lapse) is a `TimedRule`: its
state may carry a deadline, and `tick` runs when the detector clock (event time) reaches it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from orderguard.shared.engine.consumer import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.events.registry import REGISTRY
from orderguard.shared.tracing import child_of

State = dict[str, Any]


def fingerprint(rule: str, identity: Mapping[str, str], window: str | int) -> str:
    """Deterministic id of one anomaly episode: rule + identity labels + window."""
    canonical = "\x1f".join([rule, *(f"{k}={identity[k]}" for k in sorted(identity)), str(window)])
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class Rule(Protocol):
    name: str
    event_types: frozenset[str]

    def key(self, event: Event) -> str | None:
        """The state this event touches (e.g. one SKU in one warehouse); None to ignore it."""

    def initial_state(self) -> State: ...

    def apply(
        self, state: State, event: Event, now: datetime
    ) -> tuple[State, list[AnomalyDetected]]:
        """Return the new state (a new dict when changed) and the anomalies raised.

        `now` is when the event is processed; its event time is `event.envelope.time`.
        """


@runtime_checkable
class TimedRule(Rule, Protocol):
    """A rule that also acts when nothing happens: its state says when, `tick` says what."""

    def deadline(self, state: State) -> datetime | None:
        """When `tick` is due for this state (event time, with a UTC offset); None for never."""

    def tick(self, state: State, key: str, now: datetime) -> tuple[State, list[AnomalyDetected]]:
        """The detector clock `now` reached `deadline(state)` with no event changing the state:
        return the new state and the anomalies. The new state's deadline must be None or later
        than `now` (to fire again later, e.g. a reminder, push it forward)."""


def anomaly_envelope(anomaly: AnomalyDetected, source: str, cause: Envelope | None) -> Envelope:
    """The anomaly as an event; it continues the trace of the event that caused it (a deadline
    that passed starts a new trace)."""
    return REGISTRY.envelope(
        anomaly,
        source=source,
        subject=anomaly.fingerprint,
        time=anomaly.detected_at,
        traceparent=child_of(cause.traceparent if cause is not None else None),
    )
