"""Detector rules over inventory events: pure functions of state, event and clock."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from orderguard.shared.detection import State, fingerprint
from orderguard.shared.detector_config import RuleConfig
from orderguard.shared.engine import Event
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.events.inventory import StockChanged


class LowStock:
    """`stock.low`: available stock of a SKU in a warehouse fell below its threshold.

    Fires once per episode: it re-arms only when available stock has recovered above
    threshold + hysteresis, so a SKU hovering at the threshold does not flap.

    The threshold is the SKU's own when the event carries one (`low_stock_threshold`, set over
    HTTP); otherwise, like the hysteresis, it comes from the detectors configuration for the
    event's sku and warehouse (see `shared/detector_config.py`).
    """

    name = "stock.low"
    event_types = frozenset({"inventory.stock_changed.v1"})
    override_labels = ("sku", "warehouse")

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        threshold: int = Field(
            default=10, ge=0, description="Fires when available falls below this"
        )
        hysteresis: int = Field(
            default=0, ge=0, description="Re-arms only above threshold + hysteresis"
        )

    def __init__(self, config: RuleConfig[LowStock.Params]) -> None:
        self.config = config

    def key(self, event: Event) -> str | None:
        data = event.data
        assert isinstance(data, StockChanged)
        return f"{data.sku}@{data.warehouse}"

    def initial_state(self) -> State:
        return {"low": False, "episode": 0}

    def apply(
        self, state: State, event: Event, now: datetime
    ) -> tuple[State, list[AnomalyDetected]]:
        data = event.data
        assert isinstance(data, StockChanged)
        params = self.config.params_for({"sku": data.sku, "warehouse": data.warehouse})
        threshold = (
            data.low_stock_threshold if data.low_stock_threshold is not None else params.threshold
        )
        if not state["low"] and data.available < threshold:
            episode = state["episode"] + 1
            severity = "P2" if data.available <= 0 else "P3"
            labels = {
                "sku": data.sku,
                "warehouse": data.warehouse,
                "severity": severity,
                "team": "warehouse",
            }
            anomaly = AnomalyDetected(
                rule=self.name,
                fingerprint=fingerprint(
                    self.name, {"sku": data.sku, "warehouse": data.warehouse}, episode
                ),
                severity=severity,
                team="warehouse",
                labels=labels,
                summary=(
                    f"SKU {data.sku} in {data.warehouse}: {data.available} available,"
                    f" below its threshold of {threshold}"
                ),
                event_time=event.envelope.time,
                detected_at=now,
                source_event_id=event.id,
            )
            return {"low": True, "episode": episode}, [anomaly]
        if state["low"] and data.available > threshold + params.hysteresis:
            return {"low": False, "episode": state["episode"]}, []
        return state, []


# The rules this module declares to the detectors configuration (its RULE_MODULES lists us).
RULES = (LowStock,)
