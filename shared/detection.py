"""Pure detector rules: state + event + clock -> new state + anomalies. No I/O here.

The same rule runs under the engine (`engine/detectors.py`), backtests, unit tests and the
faust driver; the fingerprint makes its anomalies collapse downstream whichever ran it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from orderguard.shared.engine.consumer import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected
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
        """Return the new state (a new dict when changed) and the anomalies raised."""


def anomaly_envelope(anomaly: AnomalyDetected, source: str, cause: Envelope) -> Envelope:
    return Envelope(
        type="anomaly.detected.v1",
        source=source,
        subject=anomaly.fingerprint,
        time=anomaly.detected_at,
        data=anomaly.model_dump(mode="json"),
        traceparent=child_of(cause.traceparent),
    )
