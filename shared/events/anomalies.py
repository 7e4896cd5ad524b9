"""Anomalies (on `anomalies.detected`) and routed anomalies (on `queues.<team>`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from orderguard.shared.events.registry import event_type

Severity = Literal["P1", "P2", "P3", "P4"]
Team = Literal["warehouse", "logistics", "finance", "customer_service", "risk"]


@event_type("anomaly.detected.v1")
class AnomalyDetected(BaseModel):
    rule: str = Field(description="The detector rule that fired, e.g. stock.low")
    fingerprint: str = Field(description="Deterministic over rule, identity labels and window")
    status: Literal["firing", "resolved"] = "firing"
    severity: Severity
    team: Team
    labels: dict[str, str]
    summary: str
    event_time: datetime = Field(description="Time of the event that made the rule fire")
    detected_at: datetime
    source_event_id: str


@event_type("anomaly.routed.v1")
class AnomalyRouted(BaseModel):
    anomaly: AnomalyDetected
    route: str = Field(description="Name of the route that matched")
    queue: str = Field(description="The team queue, e.g. warehouse")
    channels: list[str] = Field(default_factory=list)
    routed_at: datetime
