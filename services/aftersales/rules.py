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
    anomaly (status resolved, same fingerprint). One breach per case at most.
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
        responded = isinstance(data, CaseClosed) or (
            isinstance(data, CaseUpdated) and data.responded
        )
        if not responded or state["responded"]:
            return state, []
        at = data.closed_at if isinstance(data, CaseClosed) else data.updated_at
        new_state = {**state, "responded": True, "responded_at": as_utc(at).isoformat()}
        if not state["breached"]:
            return new_state, []
        return new_state, [self._anomaly(new_state, data.case_id, now, event.id, "resolved")]

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
            status=status,  # type: ignore[arg-type]
            severity=severity,  # type: ignore[arg-type]
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

    The window slides with the customer's latest refund time; a late refund counts if it falls
    inside the window ending at that latest time. State is bounded: only refund times still in
    the window are kept (at most MAX_KEPT, the latest). Fires once per episode; re-arms when a
    refund arrives and the window holds fewer than the threshold. A refund resent under a new
    event id (same refund id) is not counted twice. Per-channel overrides by label `channel`.
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
        at = as_utc(data.issued_at).isoformat()
        refunds = sorted([*state["refunds"], [at, data.refund_id]])
        latest = datetime.fromisoformat(refunds[-1][0])
        start = latest - timedelta(seconds=params.window_s)
        kept = [r for r in refunds if datetime.fromisoformat(r[0]) >= start][-self.MAX_KEPT :]
        in_window = len(kept)
        new_state = {**state, "refunds": kept}
        if state["firing"] and in_window < params.threshold:
            return {**new_state, "firing": False}, []
        if state["firing"] or in_window < params.threshold:
            return new_state, []
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
                f"Customer {data.customer_id}: {in_window} refunds within {days:g} days"
                f" (threshold {params.threshold}); latest {data.refund_id} on order {data.order_id}"
            ),
            event_time=as_utc(data.issued_at),
            detected_at=now,
            source_event_id=event.id,
        )
        return {**new_state, "firing": True, "episode": episode}, [anomaly]


# The rules this module declares to the detectors configuration (its RULE_MODULES lists us).
RULES = (CaseSlaBreached, RepeatedRefunds)
