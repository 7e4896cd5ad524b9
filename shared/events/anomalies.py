"""Anomalies (on `anomalies.detected`) and routed anomalies (on `queues.<team>`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from orderguard.shared.events.registry import event_type

Severity = Literal["P1", "P2", "P3", "P4"]
Team = Literal["warehouse", "logistics", "finance", "customer_service", "risk"]

ANOMALY_EXAMPLE: JsonDict = {
    "rule": "stock.low",
    "fingerprint": "96fe43191f8d2fe1d55bcb5eb73f5922",
    "status": "firing",
    "severity": "P3",
    "team": "warehouse",
    "labels": {"sku": "MUG-RED-350", "warehouse": "main", "severity": "P3", "team": "warehouse"},
    "summary": "SKU MUG-RED-350 in main: 8 available, below its threshold of 10",
    "event_time": "2026-11-22T08:00:01Z",
    "detected_at": "2026-11-22T08:00:01.250000Z",
    "source_event_id": "0b9f6a52-4a8e-4f4e-9d0c-2f1d7c3e8a61",
}


@event_type("anomaly.detected.v1")
class AnomalyDetected(BaseModel):
    """A detector rule fired: something abnormal, labelled for the router."""

    model_config = ConfigDict(json_schema_extra={"examples": [ANOMALY_EXAMPLE]})

    rule: str = Field(description="The detector rule that fired, e.g. stock.low")
    fingerprint: str = Field(
        description="Deterministic over rule, identity labels and window; the subject and Kafka key"
    )
    status: Literal["firing", "resolved"] = "firing"
    severity: Severity = Field(description="P1 (page now) to P4 (look when convenient)")
    team: Team = Field(description="The team that owns this kind of anomaly")
    labels: dict[str, str] = Field(description="Identity and routing labels, e.g. sku, warehouse")
    summary: str = Field(description="One line for people")
    event_time: datetime = Field(description="Time of the event that made the rule fire")
    detected_at: datetime
    source_event_id: str = Field(description="Id of the event that made the rule fire")


@event_type("anomaly.routed.v1")
class AnomalyRouted(BaseModel):
    """An anomaly the router sent to a team's queue, with the channels to notify."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "anomaly": ANOMALY_EXAMPLE,
                    "route": "warehouse-stock",
                    "queue": "warehouse",
                    "channels": ["in_app"],
                    "routed_at": "2026-11-22T08:00:01.400000Z",
                }
            ]
        }
    )

    anomaly: AnomalyDetected
    route: str = Field(description="Name of the route that matched")
    queue: str = Field(description="The team queue, e.g. warehouse")
    channels: list[str] = Field(default_factory=list, description="Where people are notified")
    routed_at: datetime
    group_key: str | None = Field(
        default=None,
        description="The route's group (its group_by label values): one work item per group;"
        " None means the anomaly is its own group (its fingerprint)",
    )
    severity: Severity | None = Field(
        default=None,
        description="Severity after the route (a route may raise it); None: the anomaly's",
    )
