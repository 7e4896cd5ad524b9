"""Detector rules over shipment events (`logistics.events`, key: shipment id). Pure: state +
event + clock -> new state + anomalies.

They read the logistics service's own events rather than raw carrier scans because only the
service knows which shipment a tracking number belongs to (and after a reassignment, that two
numbers are one parcel), which status a scan moved it to, and the promised date of its order:
`shipment.created.v1` arms the overdue deadline, `shipment.scanned.v1` (event time = the
carrier's scan time) moves the stall deadline, `shipment.reassigned.v1` changes the carrier
whose parameters apply, `shipment.exception_reported.v1` is a carrier exception. All are keyed
by shipment id, so one shipment's events stay in order on one partition.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from orderguard.services.logistics.domain import IN_TRANSIT, PROGRESS
from orderguard.shared.detection.config import RuleConfig
from orderguard.shared.detection.rule import State, fingerprint
from orderguard.shared.engine import Event
from orderguard.shared.events.anomalies import AnomalyDetected, Severity
from orderguard.shared.events.logistics import (
    ExceptionReason,
    ShipmentCreated,
    ShipmentExceptionReported,
    ShipmentReassigned,
    ShipmentScanned,
)

TEAM = "logistics"
_IDENTITY = ("shipment_id", "order_id", "carrier", "tracking_number", "warehouse")


def _shipment_id(event: Event) -> str:
    data = event.data
    assert isinstance(
        data, ShipmentCreated | ShipmentScanned | ShipmentReassigned | ShipmentExceptionReported
    )
    return data.shipment_id


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _follow(state: State, event: Event) -> State:
    """The shipment's identity and status as its events tell them (common to the timed rules)."""
    data = event.data
    new = dict(state)
    if isinstance(data, ShipmentCreated):
        new.update(
            shipment_id=data.shipment_id,
            order_id=data.order_id,
            carrier=data.carrier,
            tracking_number=data.tracking_number,
            warehouse=data.warehouse,
            promised=_iso(data.promised_delivery_by),
        )
    elif isinstance(data, ShipmentReassigned):
        new.update(
            shipment_id=data.shipment_id,
            order_id=data.order_id,
            carrier=data.carrier,
            tracking_number=data.tracking_number,
        )
    elif isinstance(data, ShipmentScanned):
        new.update(shipment_id=data.shipment_id, order_id=data.order_id)
        new.setdefault("carrier", data.carrier)
        new.setdefault("tracking_number", data.tracking_number)
        # Events of one shipment arrive in order, but a status never goes back regardless.
        if PROGRESS[data.shipment_status] > PROGRESS[new.get("status") or "created"]:
            new["status"] = data.shipment_status
    elif isinstance(data, ShipmentExceptionReported) and data.reason == "lost":
        new["lost"] = True  # declared lost: a case is opened for the customer; no more alarms
    return new


def _labels(state: State, severity: str) -> dict[str, str]:
    labels = {name: str(state[name]) for name in _IDENTITY if state.get(name) is not None}
    return {**labels, "severity": severity, "team": TEAM}


def _anomaly(
    rule: str,
    state: State,
    episode: int,
    severity: Severity,
    summary: str,
    event_time: datetime,
    now: datetime,
    source_event_id: str,
    status: str = "firing",
    fingerprint_rule: str | None = None,
) -> AnomalyDetected:
    return AnomalyDetected(
        rule=rule,
        fingerprint=fingerprint(
            fingerprint_rule or rule, {"shipment_id": state["shipment_id"]}, episode
        ),
        status=status,
        severity=severity,
        team=TEAM,
        labels=_labels(state, severity),
        summary=summary,
        event_time=event_time,
        detected_at=now,
        source_event_id=source_event_id,
    )


def _passed_deadline(
    rule: ShipmentStalled | ShipmentOverdue, state: State, data: object, now: datetime
) -> tuple[State, list[AnomalyDetected]]:
    """A scan stamped at or after the state's deadline that arrives before the clock got there
    (it was on its way): the deadline passed in event time all the same, so it is ticked first
    and the scan applies after it — what is raised depends on event times, not on the order
    events arrive in (within the allowed lateness)."""
    due = rule.deadline(state)
    if isinstance(data, ShipmentScanned) and due is not None and data.scanned_at >= due:
        state, anomalies = rule.tick(state, data.shipment_id, now)
        return state, anomalies
    return state, []


class ShipmentStalled:
    """`shipment.stalled`: a shipment the carrier holds (picked up, in transit, out for delivery)
    with no scan for `silence_hours` of event time. It fires while the shipment is silent (a
    deadline the engine sweeps; the partition's clock follows the wall clock when it is idle).

    A scan newer than the last one clears it: `shipment.resumed`, status resolved, with the
    stall's fingerprint; delivery clears it too. A scan older than the last one (late, out of
    order) proves nothing about the parcel now and changes nothing. A reassignment keeps the
    silence running (the parcel did not move) with the new carrier's `silence_hours`.
    """

    name = "shipment.stalled"
    resumed = "shipment.resumed"
    event_types = frozenset(
        {
            "shipment.created.v1",
            "shipment.scanned.v1",
            "shipment.reassigned.v1",
            "shipment.exception_reported.v1",  # a lost parcel is no longer watched
        }
    )
    override_labels = ("carrier", "warehouse")

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        silence_hours: float = Field(
            default=24.0, gt=0, description="Fires after this long without a scan in transit"
        )
        severity: Severity = "P3"

    def __init__(self, config: RuleConfig[ShipmentStalled.Params]) -> None:
        self.config = config

    def key(self, event: Event) -> str | None:
        return _shipment_id(event)

    def initial_state(self) -> State:
        return {
            "status": "created",
            "last_scan_at": None,
            "due": None,
            "stalled": False,
            "episode": 0,
        }

    def _params(self, state: State) -> ShipmentStalled.Params:
        return self.config.params_for(
            {"carrier": state.get("carrier") or "", "warehouse": state.get("warehouse") or ""}
        )

    def _due(self, state: State) -> str | None:
        last = _at(state["last_scan_at"])
        if state["stalled"] or last is None or state["status"] not in IN_TRANSIT:
            return None
        if state.get("lost"):
            return None
        return _iso(last + timedelta(hours=self._params(state).silence_hours))

    def apply(
        self, state: State, event: Event, now: datetime
    ) -> tuple[State, list[AnomalyDetected]]:
        data = event.data
        state, anomalies = _passed_deadline(self, state, data, now)
        new = _follow(state, event)
        if isinstance(data, ShipmentScanned):
            last = _at(state["last_scan_at"])
            newer = last is None or data.scanned_at > last
            if newer:
                new["last_scan_at"] = _iso(data.scanned_at)
                new["last_event"] = event.id
            if state["stalled"] and (newer or new["status"] == "delivered"):
                new["stalled"] = False
                params = self._params(new)
                anomalies.append(
                    _anomaly(
                        self.resumed,
                        new,
                        state["episode"],
                        params.severity,
                        f"Shipment {new['shipment_id']} ({new['carrier']}"
                        f" {data.tracking_number}) resumed: {data.scan_status} scan at"
                        f" {data.scanned_at.isoformat()}",
                        data.scanned_at,
                        now,
                        event.id,
                        status="resolved",
                        fingerprint_rule=self.name,
                    )
                )
        new["due"] = self._due(new)
        return (new if new != state else state), anomalies

    def deadline(self, state: State) -> datetime | None:
        return _at(state["due"])

    def tick(self, state: State, key: str, now: datetime) -> tuple[State, list[AnomalyDetected]]:
        due = _at(state["due"])
        assert due is not None
        episode = state["episode"] + 1
        params = self._params(state)
        anomaly = _anomaly(
            self.name,
            state,
            episode,
            params.severity,
            f"Shipment {key} ({state['carrier']} {state['tracking_number']}) has had no scan"
            f" since {state['last_scan_at']} ({params.silence_hours:g} h of silence)",
            due,
            now,
            state.get("last_event") or key,
        )
        return {**state, "stalled": True, "episode": episode, "due": None}, [anomaly]


class ShipmentOverdue:
    """`shipment.overdue`: not delivered by the order's promised date (+ `grace_hours`), on
    event time; fires while nothing arrives. Delivery resolves it (same fingerprint)."""

    name = "shipment.overdue"
    event_types = frozenset(
        {
            "shipment.created.v1",
            "shipment.scanned.v1",
            "shipment.reassigned.v1",
            "shipment.exception_reported.v1",  # a lost parcel is no longer watched
        }
    )
    override_labels = ("carrier", "warehouse")

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        grace_hours: float = Field(
            default=0.0, ge=0, description="Fires this long after the promised delivery date"
        )
        severity: Severity = "P3"

    def __init__(self, config: RuleConfig[ShipmentOverdue.Params]) -> None:
        self.config = config

    def key(self, event: Event) -> str | None:
        return _shipment_id(event)

    def initial_state(self) -> State:
        return {"status": "created", "promised": None, "due": None, "overdue": False, "episode": 0}

    def _params(self, state: State) -> ShipmentOverdue.Params:
        return self.config.params_for(
            {"carrier": state.get("carrier") or "", "warehouse": state.get("warehouse") or ""}
        )

    def _due(self, state: State) -> str | None:
        promised = _at(state["promised"])
        if state["overdue"] or promised is None or state["status"] == "delivered":
            return None
        if state.get("lost"):
            return None
        return _iso(promised + timedelta(hours=self._params(state).grace_hours))

    def apply(
        self, state: State, event: Event, now: datetime
    ) -> tuple[State, list[AnomalyDetected]]:
        data = event.data
        state, anomalies = _passed_deadline(self, state, data, now)
        new = _follow(state, event)
        if isinstance(data, ShipmentCreated):
            new["last_event"] = event.id
        if state["overdue"] and new["status"] == "delivered" and isinstance(data, ShipmentScanned):
            new["overdue"] = False
            anomalies.append(
                _anomaly(
                    self.name,
                    new,
                    state["episode"],
                    self._params(new).severity,
                    f"Shipment {new['shipment_id']} delivered at {data.scanned_at.isoformat()},"
                    f" after its promised date {new['promised']}",
                    data.scanned_at,
                    now,
                    event.id,
                    status="resolved",
                )
            )
        new["due"] = self._due(new)
        return (new if new != state else state), anomalies

    def deadline(self, state: State) -> datetime | None:
        return _at(state["due"])

    def tick(self, state: State, key: str, now: datetime) -> tuple[State, list[AnomalyDetected]]:
        due = _at(state["due"])
        assert due is not None
        episode = state["episode"] + 1
        anomaly = _anomaly(
            self.name,
            state,
            episode,
            self._params(state).severity,
            f"Shipment {key} ({state.get('carrier')} {state.get('tracking_number')}) is not"
            f" delivered; it was promised by {state['promised']}",
            due,
            now,
            state.get("last_event") or key,
        )
        return {**state, "overdue": True, "episode": episode, "due": None}, [anomaly]


DEFAULT_EXCEPTION_SEVERITY: dict[ExceptionReason, Severity] = {
    "lost": "P2",
    "damaged": "P3",
    "refused": "P3",
    "address_problem": "P4",
}


class ShipmentException:
    """`shipment.exception`: the carrier reported the parcel lost, damaged, refused or with an
    address problem. One anomaly per exception scan (its scan id is the fingerprint's window),
    labelled with carrier and reason; severity by reason."""

    name = "shipment.exception"
    event_types = frozenset({"shipment.exception_reported.v1"})
    override_labels = ("carrier", "warehouse", "reason")

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        severity: dict[ExceptionReason, Severity] = Field(
            default_factory=lambda: dict(DEFAULT_EXCEPTION_SEVERITY),
            description="Severity per reason (a reason left out is P3)",
        )

    def __init__(self, config: RuleConfig[ShipmentException.Params]) -> None:
        self.config = config

    def key(self, event: Event) -> str | None:
        return _shipment_id(event)

    def initial_state(self) -> State:
        return {"exceptions": 0}

    def apply(
        self, state: State, event: Event, now: datetime
    ) -> tuple[State, list[AnomalyDetected]]:
        data = event.data
        assert isinstance(data, ShipmentExceptionReported)
        labels = {"carrier": data.carrier, "warehouse": data.warehouse, "reason": data.reason}
        severity = self.config.params_for(labels).severity.get(data.reason, "P3")
        anomaly = AnomalyDetected(
            rule=self.name,
            fingerprint=fingerprint(
                self.name, {"shipment_id": data.shipment_id, "reason": data.reason}, data.scan_id
            ),
            severity=severity,
            team=TEAM,
            labels={
                "shipment_id": data.shipment_id,
                "order_id": data.order_id,
                "tracking_number": data.tracking_number,
                **labels,
                "severity": severity,
                "team": TEAM,
            },
            summary=(
                f"Shipment {data.shipment_id} ({data.carrier} {data.tracking_number}):"
                f" carrier reports {data.reason.replace('_', ' ')}"
                + (f" at {data.location}" if data.location else "")
            ),
            event_time=event.envelope.time,
            detected_at=now,
            source_event_id=event.id,
        )
        return {"exceptions": state["exceptions"] + 1}, [anomaly]


# The rules the detectors run (bootstrap.py) and the detectors file configures
# (cli/services_registry.py lists this tuple with the other services').
RULES = (ShipmentStalled, ShipmentOverdue, ShipmentException)
