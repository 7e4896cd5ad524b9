"""Detector rules over inventory events: pure functions of state, event and clock."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from orderguard.shared.detection.config import RuleConfig
from orderguard.shared.detection.rule import State, fingerprint
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected, Severity
from orderguard.shared.events.inventory import StockChanged, StockCounted


class LowStock:
    """`stock.low`: available stock of a SKU in a warehouse fell below its threshold.

    Fires once per episode: it re-arms only when available stock has recovered above
    threshold + hysteresis, so a SKU hovering at the threshold does not flap. The recovery is
    published as `stock.recovered` with status "resolved" and the firing's fingerprint, so
    whatever the firing opened downstream can be closed.

    The threshold is the SKU's own when the event carries one (`low_stock_threshold`, set over
    HTTP); otherwise, like the hysteresis, it comes from the detectors configuration for the
    event's sku and warehouse (see `shared/detection/config.py`).
    """

    name = "stock.low"
    recovered = "stock.recovered"
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
            severity: Severity = "P2" if data.available <= 0 else "P3"
            anomaly = _stock_anomaly(
                self.name,
                data,
                episode,
                severity,
                f"SKU {data.sku} in {data.warehouse}: {data.available} available,"
                f" below its threshold of {threshold}",
                event,
                now,
            )
            return {"low": True, "episode": episode, "severity": severity}, [anomaly]
        if state["low"] and data.available > threshold + params.hysteresis:
            # Resolves the episode's anomaly: the same fingerprint, so it closes what it opened.
            recovered = _stock_anomaly(
                self.name,
                data,
                state["episode"],
                state.get("severity", "P3"),
                f"SKU {data.sku} in {data.warehouse} recovered: {data.available} available,"
                f" above its threshold of {threshold} + hysteresis {params.hysteresis}",
                event,
                now,
                resolved_as=self.recovered,
            )
            return {"low": False, "episode": state["episode"]}, [recovered]
        return state, []


def _stock_anomaly(
    rule: str,
    data: StockChanged,
    episode: int,
    severity: Severity,
    summary: str,
    event: Event,
    now: datetime,
    resolved_as: str | None = None,
) -> AnomalyDetected:
    """An anomaly about one SKU in one warehouse, one per episode; `resolved_as` names the
    resolution (status resolved, the firing's fingerprint)."""
    identity = {"sku": data.sku, "warehouse": data.warehouse}
    return AnomalyDetected(
        rule=resolved_as or rule,
        fingerprint=fingerprint(rule, identity, episode),
        status="resolved" if resolved_as else "firing",
        severity=severity,
        team="warehouse",
        labels={**identity, "severity": severity, "team": "warehouse"},
        summary=summary,
        event_time=event.envelope.time,
        detected_at=now,
        source_event_id=event.id,
    )


class NegativeAvailable:
    """`inventory.negative_available`: more units are reserved than are on hand.

    Reservations never overbook, so this is a data error: a count or a set that put on hand
    below what orders hold. Fires once per episode; when available is back at or above
    `-tolerance` it resolves (`inventory.available_restored`, the same fingerprint).
    """

    name = "inventory.negative_available"
    recovered = "inventory.available_restored"
    event_types = frozenset({"inventory.stock_changed.v1"})
    override_labels = ("sku", "warehouse")

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        tolerance: int = Field(
            default=0, ge=0, description="Fires when available falls below -tolerance"
        )
        severity: Severity = Field(default="P2", description="Severity of the anomaly")

    def __init__(self, config: RuleConfig[NegativeAvailable.Params]) -> None:
        self.config = config

    def key(self, event: Event) -> str | None:
        data = event.data
        assert isinstance(data, StockChanged)
        return f"{data.sku}@{data.warehouse}"

    def initial_state(self) -> State:
        return {"negative": False, "episode": 0}

    def apply(
        self, state: State, event: Event, now: datetime
    ) -> tuple[State, list[AnomalyDetected]]:
        data = event.data
        assert isinstance(data, StockChanged)
        params = self.config.params_for({"sku": data.sku, "warehouse": data.warehouse})
        if not state["negative"] and data.available < -params.tolerance:
            episode = state["episode"] + 1
            anomaly = _stock_anomaly(
                self.name,
                data,
                episode,
                params.severity,
                f"SKU {data.sku} in {data.warehouse}: available is {data.available}"
                f" ({data.on_hand} on hand, {data.reserved} reserved) after {data.cause}",
                event,
                now,
            )
            return {"negative": True, "episode": episode, "severity": params.severity}, [anomaly]
        if state["negative"] and data.available >= -params.tolerance:
            restored = _stock_anomaly(
                self.name,
                data,
                state["episode"],
                state.get("severity", params.severity),
                f"SKU {data.sku} in {data.warehouse}: available is {data.available} again",
                event,
                now,
                resolved_as=self.recovered,
            )
            return {"negative": False, "episode": state["episode"]}, [restored]
        return state, []


class InventoryInconsistent:
    """`inventory.inconsistent`: a stock count disagrees with what we recorded.

    Two comparisons per `inventory.counted.v1`, both on numbers read before the count was
    applied, in the count's transaction:
    - `check=ledger`: the stock row (the running balance: on hand and reserved) against the
      sums of the stock ledger. Exact: they can only differ if something wrote the stock row
      without the ledger (a manual fix, a restore, a bug).
    - `check=count`: the counted on hand against the stock row's on hand: fires when they
      differ by more than `tolerance` units (shrinkage, misplacement, a missed receipt).
    One anomaly per count and check: the count id is the fingerprint's window.
    """

    name = "inventory.inconsistent"
    event_types = frozenset({"inventory.counted.v1"})
    override_labels = ("sku", "warehouse")

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        tolerance: int = Field(
            default=0, ge=0, description="Units a count may differ from the expected on hand"
        )
        severity: Severity = Field(default="P3", description="Severity of the anomaly")

    def __init__(self, config: RuleConfig[InventoryInconsistent.Params]) -> None:
        self.config = config

    def key(self, event: Event) -> str | None:
        data = event.data
        assert isinstance(data, StockCounted)
        return f"{data.sku}@{data.warehouse}"

    def initial_state(self) -> State:
        return {}

    def apply(
        self, state: State, event: Event, now: datetime
    ) -> tuple[State, list[AnomalyDetected]]:
        data = event.data
        assert isinstance(data, StockCounted)
        params = self.config.params_for({"sku": data.sku, "warehouse": data.warehouse})
        found: list[tuple[str, str]] = []
        if (data.expected_on_hand, data.reserved) != (data.ledger_on_hand, data.ledger_reserved):
            found.append(
                (
                    "ledger",
                    f"SKU {data.sku} in {data.warehouse}: the stock row says"
                    f" {data.expected_on_hand} on hand and {data.reserved} reserved, the ledger"
                    f" sums to {data.ledger_on_hand} on hand and {data.ledger_reserved} reserved"
                    f" (count {data.count_id})",
                )
            )
        difference = data.counted_on_hand - data.expected_on_hand
        if abs(difference) > params.tolerance:
            found.append(
                (
                    "count",
                    f"SKU {data.sku} in {data.warehouse}: counted {data.counted_on_hand} on hand"
                    f" by {data.counted_by}, expected {data.expected_on_hand}"
                    f" (difference {difference:+d}, tolerance {params.tolerance})",
                )
            )
        anomalies = []
        for check, summary in found:
            identity = {"sku": data.sku, "warehouse": data.warehouse, "check": check}
            anomalies.append(
                AnomalyDetected(
                    rule=self.name,
                    fingerprint=fingerprint(self.name, identity, data.count_id),
                    severity=params.severity,
                    team="warehouse",
                    labels={**identity, "severity": params.severity, "team": "warehouse"},
                    summary=summary,
                    event_time=event.envelope.time,
                    detected_at=now,
                    source_event_id=event.id,
                )
            )
        return state, anomalies


class UnknownReservation:
    """`inventory.unknown_reservation`: a shipment or a cancellation asks to commit or release
    an order's reservation, and there is no live one (found: the states of what there is).

    Not a stream rule: the reservations use case finds it while applying the event, from the
    reservation it has just locked, and raises the anomaly built here. Configured like the
    rules (enabled, severity). One per order and action: the same fact redelivered collapses
    downstream.
    """

    name = "inventory.unknown_reservation"
    team = "warehouse"
    override_labels: tuple[str, ...] = ()

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        severity: Severity = Field(default="P3", description="Severity of the anomaly")

    def __init__(self, config: RuleConfig[UnknownReservation.Params]) -> None:
        self.config = config

    def anomaly(
        self, order_id: str, action: str, found: str, cause: Envelope, now: datetime
    ) -> AnomalyDetected | None:
        """The anomaly for this order and action; None when the detectors file disables it."""
        if not self.config.enabled:
            return None
        severity = self.config.base.severity
        identity = {"order_id": order_id, "action": action}
        return AnomalyDetected(
            rule=self.name,
            fingerprint=fingerprint(self.name, identity, 0),
            severity=severity,
            team=self.team,
            labels={**identity, "found": found, "severity": severity, "team": self.team},
            summary=(
                f"order {order_id}: {cause.type} asks to {action} its reservation,"
                f" but there is no live reservation (found: {found})"
            ),
            event_time=cause.time,
            detected_at=now,
            source_event_id=cause.id,
        )


# The stream rules the inventory detectors run (bootstrap.py) and the detectors file configures
# (cli/services_registry.py lists this tuple with the other services').
RULES = (LowStock, NegativeAvailable, InventoryInconsistent)
# Anomalies a use case raises while applying an event: configured by the same file.
USE_CASE_ANOMALIES = (UnknownReservation,)
