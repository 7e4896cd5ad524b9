"""Detector rules over aftersales events: pure functions of state, event and clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from orderguard.shared.detection.config import RuleConfig
from orderguard.shared.detection.deadlines import as_utc
from orderguard.shared.detection.rule import State, fingerprint
from orderguard.shared.engine import Event
from orderguard.shared.events.aftersales import CaseClosed, CaseOpened, CaseUpdated, RefundIssued
from orderguard.shared.events.anomalies import AnomalyDetected


class CaseSlaBreached:
    """`case.sla_breached`: nobody from staff responded to a case within its first-response SLA.

    Fires while nobody acts: opening a case arms a deadline at opened_at + SLA (event time); the
    engine sweeps it on the partition's clock, which follows the wall clock when the partition
    is quiet. The first response — a `case.updated.v1` with `responded` (an agent's comment or a
    state change by staff) or the case's closing — disarms it; after a breach it resolves the
    anomaly (status resolved, same fingerprint). A first response later than the deadline that
    arrives before the clock reached it raises the breach and its resolution at once, so what
    is raised depends on event times, not on the order events arrive in (within the allowed
    lateness). One breach per case at most.
    """

    name = "case.sla_breached"
    event_types = frozenset({"case.opened.v1", "case.updated.v1", "case.closed.v1"})
    override_labels = ("case_type", "priority")

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        first_response_s: float = Field(
            default=24 * 3600.0, gt=0, description="Time allowed for staff's first response"
        )

    def __init__(self, config: RuleConfig[CaseSlaBreached.Params]) -> None:
        self.config = config

    def key(self, event: Event) -> str | None:
        data = event.data
        assert isinstance(data, CaseOpened | CaseUpdated | CaseClosed)
        return data.case_id

    def initial_state(self) -> State:
        return {"due_at": None, "responded": False, "breached": False}

    def first_response_s(self, case_type: str, priority: str) -> float:
        return self.config.params_for(
            {"case_type": case_type, "priority": priority}
        ).first_response_s

    def apply(
        self, state: State, event: Event, now: datetime
    ) -> tuple[State, list[AnomalyDetected]]:
        data = event.data
        if isinstance(data, CaseOpened):
            if state.get("opened_at") is not None:
                return state, []  # the same case opened again (a producer's resend)
            opened = as_utc(data.opened_at)
            sla = self.first_response_s(data.case_type, data.priority)
            return {
                **state,
                "opened_at": opened.isoformat(),
                "due_at": (opened + timedelta(seconds=sla)).isoformat(),
                "case_type": data.case_type,
                "priority": data.priority,
                "order_id": data.order_id,
                "opened_event": event.id,
            }, []
        assert isinstance(data, CaseUpdated | CaseClosed)
        responded = isinstance(data, CaseClosed) or (
            isinstance(data, CaseUpdated) and data.responded
        )
        if not responded or state["responded"]:
            return state, []
        at = as_utc(data.closed_at if isinstance(data, CaseClosed) else data.updated_at)
        new_state = {**state, "responded": True, "responded_at": at.isoformat()}
        anomalies = []
        due = self.deadline(state)
        if due is not None and at >= due:
            # Answered after the deadline, before the clock got there (the answer was on its
            # way): the breach is a fact of event time all the same; then its resolution.
            new_state["breached"] = True
            anomalies.append(
                self._anomaly(new_state, data.case_id, now, state["opened_event"], "firing")
            )
        if new_state["breached"]:
            anomalies.append(self._anomaly(new_state, data.case_id, now, event.id, "resolved"))
        return new_state, anomalies

    def deadline(self, state: State) -> datetime | None:
        if state["responded"] or state["breached"] or state["due_at"] is None:
            return None
        return datetime.fromisoformat(state["due_at"])

    def tick(self, state: State, key: str, now: datetime) -> tuple[State, list[AnomalyDetected]]:
        new_state = {**state, "breached": True}
        return new_state, [self._anomaly(new_state, key, now, state["opened_event"], "firing")]

    def _anomaly(
        self, state: State, case_id: str, now: datetime, source: str, status: str
    ) -> AnomalyDetected:
        severity = "P2" if state["priority"] in ("P1", "P2") else "P3"
        labels = {
            "case_id": case_id,
            "case_type": state["case_type"],
            "priority": state["priority"],
            "severity": severity,
            "team": "customer_service",
        }
        verb = "responded to late" if status == "resolved" else "has had no response"
        return AnomalyDetected(
            rule=self.name,
            fingerprint=fingerprint(self.name, {"case_id": case_id}, 1),
            status=status,
            severity=severity,
            team="customer_service",
            labels=labels,
            summary=(
                f"{state['case_type']} case {case_id} (order {state['order_id']}, {state['priority']})"
                f" {verb}: first response was due at {state['due_at']}"
            ),
            event_time=datetime.fromisoformat(state["due_at"]),
            detected_at=now,
            source_event_id=source,
        )


class RepeatedRefunds:
    """`refund.repeated`: one customer got `threshold` refunds within `window_s` (event time).

    A refund counts in every window it falls in, late or out of order: it fires when some
    window holding the new refund holds `threshold`. State is bounded: the refunds of the last
    two windows before the latest (at most MAX_KEPT), so a refund arriving up to a window late
    still counts. Fires once per episode; re-arms when a refund arrives and the window ending
    at the latest holds fewer than the threshold, and a new episode's window must not overlap
    the one that fired. A refund resent under a new event id (same refund id) is not counted
    twice. Per-channel overrides by label `channel`.
    """

    name = "refund.repeated"
    event_types = frozenset({"refund.issued.v1"})
    override_labels = ("channel",)
    # aftersales.events is keyed by case, this rule by customer: the engine locks and rereads.
    keys_span_partitions = True
    MAX_KEPT = 100

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        threshold: int = Field(default=3, ge=2, description="Refunds that make an episode")
        window_s: float = Field(
            default=30 * 24 * 3600.0, gt=0, description="Sliding window, in seconds"
        )

    def __init__(self, config: RuleConfig[RepeatedRefunds.Params]) -> None:
        self.config = config

    def key(self, event: Event) -> str | None:
        data = event.data
        assert isinstance(data, RefundIssued)
        return data.customer_id

    def initial_state(self) -> State:
        return {"refunds": [], "firing": False, "episode": 0}

    def apply(
        self, state: State, event: Event, now: datetime
    ) -> tuple[State, list[AnomalyDetected]]:
        data = event.data
        assert isinstance(data, RefundIssued)
        if any(refund_id == data.refund_id for _, refund_id in state["refunds"]):
            return state, []
        params = self.config.params_for({"channel": data.channel or ""})
        window = timedelta(seconds=params.window_s)
        at = as_utc(data.issued_at)
        refunds = sorted([*state["refunds"], [at.isoformat(), data.refund_id]])
        times = [datetime.fromisoformat(issued) for issued, _ in refunds]
        latest = times[-1]
        kept = [r for r, t in zip(refunds, times, strict=True) if t > latest - 2 * window]
        kept = kept[-self.MAX_KEPT :]
        times = times[-len(kept) :]

        def in_window(end: datetime) -> int:
            return sum(1 for t in times if end - window <= t <= end)

        firing = state["firing"] and in_window(latest) >= params.threshold
        new_state = {**state, "refunds": kept, "firing": firing}
        # The first window holding this refund that holds a burst (a late refund may complete
        # one that ends before the latest).
        burst_end = next(
            (
                end
                for end in times
                if at <= end <= at + window and in_window(end) >= params.threshold
            ),
            None,
        )
        fired_end = state.get("fired_end")
        if (
            burst_end is None
            or firing
            or (fired_end is not None and burst_end - window <= datetime.fromisoformat(fired_end))
        ):
            return new_state, []
        in_window_count = in_window(burst_end)
        episode = state["episode"] + 1
        days = params.window_s / 86400
        labels = {
            "customer_id": data.customer_id,
            "channel": data.channel or "unknown",
            "severity": "P3",
            "team": "risk",
        }
        anomaly = AnomalyDetected(
            rule=self.name,
            fingerprint=fingerprint(self.name, {"customer_id": data.customer_id}, episode),
            severity="P3",
            team="risk",
            labels=labels,
            summary=(
                f"Customer {data.customer_id}: {in_window_count} refunds within {days:g} days"
                f" (threshold {params.threshold}); latest {data.refund_id} on order {data.order_id}"
            ),
            event_time=as_utc(data.issued_at),
            detected_at=now,
            source_event_id=event.id,
        )
        new_state.update(firing=True, episode=episode, fired_end=burst_end.isoformat())
        return new_state, [anomaly]


# The rules the detectors run (bootstrap.py) and the detectors file configures
# (cli/services_registry.py lists this tuple with the other services').
RULES = (CaseSlaBreached, RepeatedRefunds)
