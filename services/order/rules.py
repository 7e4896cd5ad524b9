"""Detector rules over order events: pure functions of state, event and clock. No I/O here.

- `order.duplicate`: the same customer orders the same lines to the same address twice within
  a window (a retry with the same Idempotency-Key never reaches this: it creates no order).
- `payment.failures`: a burst of payment failures per channel, and overall.

Both keep state across partitions (orders are keyed by order id, the state by customer or by
scope): `keys_span_partitions` makes the engine read that state fresh and locked per batch, so
several worker replicas count together.

Declared here too, configured by the same detectors file: the anomalies the order's use cases
raise for facts its status refuses (`payment.captured_after_cancel`,
`shipment.dispatched_while_held`).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from orderguard.services.order.domain import Order
from orderguard.shared.detection.config import RuleConfig
from orderguard.shared.detection.rule import State, fingerprint
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected, Severity
from orderguard.shared.events.logistics import ShipmentDispatched
from orderguard.shared.events.orders import OrderPaymentFailed, OrderPlaced
from orderguard.shared.events.payments import PaymentAmountMismatch, PaymentSucceeded


def order_signature(data: OrderPlaced) -> str:
    """Same lines (SKU and quantity, as a multiset) to the same address: the same signature."""
    lines = sorted((line.sku, line.quantity) for line in data.lines)
    address = data.shipping_address
    where = [
        "".join(part.split()).casefold()
        for part in (address.province, address.city, address.district, address.street)
    ]
    canonical = repr((lines, where))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


class DuplicateOrder:
    """`order.duplicate`: a customer placed an order with the same lines and address as one
    placed within `window_s` before or after it (event time: the orders' `placed_at`, so late
    or out-of-order events still pair up). One anomaly per duplicate order, labelled with that
    later order's `order_id` so the recycle bin takes it in.

    State per customer: the orders of the last two windows before the newest (at most
    `max_orders_kept`), so an order arriving up to a window late still finds its twin.
    """

    name = "order.duplicate"
    event_types = frozenset({"order.placed.v1"})
    override_labels = ("channel",)
    keys_span_partitions = True

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        window_s: float = Field(default=600.0, gt=0, description="How close two orders must be")
        max_orders_kept: int = Field(
            default=50, ge=2, description="Orders remembered per customer (the newest)"
        )

    def __init__(self, config: RuleConfig[DuplicateOrder.Params]) -> None:
        self.config = config

    def key(self, event: Event) -> str | None:
        data = event.data
        assert isinstance(data, OrderPlaced)
        return data.customer_id

    def initial_state(self) -> State:
        return {"orders": []}

    def apply(
        self, state: State, event: Event, now: datetime
    ) -> tuple[State, list[AnomalyDetected]]:
        data = event.data
        assert isinstance(data, OrderPlaced)
        params = self.config.params_for({"channel": data.channel})
        orders: list[dict[str, Any]] = state["orders"]
        if any(seen["order_id"] == data.order_id for seen in orders):
            return state, []  # the same order told again
        at = data.placed_at.timestamp()
        signature = order_signature(data)
        twin = min(
            (
                seen
                for seen in orders
                if seen["sig"] == signature and abs(seen["at"] - at) <= params.window_s
            ),
            key=lambda seen: seen["at"],
            default=None,
        )
        mine = {"order_id": data.order_id, "at": at, "sig": signature}
        latest = max([at, *(seen["at"] for seen in orders)])
        kept = sorted(
            (seen for seen in [*orders, mine] if seen["at"] > latest - 2 * params.window_s),
            key=lambda seen: (seen["at"], seen["order_id"]),
        )[-params.max_orders_kept :]
        new_state = {"orders": kept}
        if twin is None:
            return new_state, []
        first, duplicate = sorted([twin, mine], key=lambda seen: (seen["at"], seen["order_id"]))
        gap = abs(mine["at"] - twin["at"])
        anomaly = AnomalyDetected(
            rule=self.name,
            fingerprint=fingerprint(
                self.name,
                {"customer_id": data.customer_id},
                f"{first['order_id']}:{duplicate['order_id']}",
            ),
            severity="P3",
            team="risk",
            labels={
                "customer_id": data.customer_id,
                # the later order of the pair: the recycle bin moves the order this names
                "order_id": duplicate["order_id"],
                "channel": data.channel,
                "severity": "P3",
                "team": "risk",
            },
            summary=(
                f"Customer {data.customer_id} ordered the same lines to the same address twice"
                f" within {gap:.0f}s: {first['order_id']} then {duplicate['order_id']}"
            ),
            event_time=event.envelope.time,
            detected_at=now,
            source_event_id=event.id,
        )
        return new_state, [anomaly]


def _window_count(times: list[float], end: float, window: float) -> int:
    return sum(1 for t in times if end - window < t <= end)


class PaymentFailureBurst:
    """`payment.failures`: at least `threshold` payment failures of one channel, or
    `overall_threshold` across channels, within `window_s` of event time (`failed_at`).

    Fires once per burst episode: it re-arms when the failures in the window ending at the
    latest failure fall to `rearm_at_ratio` x threshold or fewer, and a new episode's window
    must not overlap the previous one's. A late failure counts in the windows it falls in.
    State: one key, the recent failure times of every channel and overall (bounded).
    """

    name = "payment.failures"
    event_types = frozenset({"order.payment_failed.v1"})
    override_labels = ("channel",)
    keys_span_partitions = True
    STATE_KEY = "payments"

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        threshold: int = Field(default=5, ge=1, description="Failures per channel in a window")
        overall_threshold: int = Field(
            default=10, ge=1, description="Failures of all channels together in a window"
        )
        window_s: float = Field(default=300.0, gt=0, description="The sliding window")
        rearm_at_ratio: float = Field(
            default=0.5, ge=0, lt=1, description="Re-arms at or below this share of threshold"
        )

    def __init__(self, config: RuleConfig[PaymentFailureBurst.Params]) -> None:
        self.config = config

    def key(self, event: Event) -> str | None:
        return self.STATE_KEY

    def initial_state(self) -> State:
        return {"scopes": {}}

    def apply(
        self, state: State, event: Event, now: datetime
    ) -> tuple[State, list[AnomalyDetected]]:
        data = event.data
        assert isinstance(data, OrderPaymentFailed)
        channel_params = self.config.params_for({"channel": data.channel})
        overall_params = self.config.base
        at = data.failed_at.timestamp()
        scopes = dict(state["scopes"])
        anomalies = []
        for scope, threshold, params in (
            (f"channel:{data.channel}", channel_params.threshold, channel_params),
            ("overall", overall_params.overall_threshold, overall_params),
        ):
            scopes[scope], burst = self._observe(scopes.get(scope), at, threshold, params)
            if burst is not None:
                anomalies.append(self._anomaly(scope, data, event, now, threshold, params, burst))
        return {"scopes": scopes}, anomalies

    @staticmethod
    def _observe(
        scope: dict[str, Any] | None, at: float, threshold: int, params: Params
    ) -> tuple[dict[str, Any], tuple[int, int] | None]:
        """The scope's new state, and (episode, failures) when a new burst fires."""
        window = params.window_s
        scope = scope or {"times": [], "firing": False, "episode": 0, "fired_end": None}
        times = sorted([*scope["times"], at])
        latest = times[-1]
        # Enough history for late failures; the newest only (a burst needs `threshold` of them).
        times = [t for t in times if t > latest - 2 * window][-max(4 * threshold, 16) :]
        firing = scope["firing"]
        if firing and _window_count(times, latest, window) <= threshold * params.rearm_at_ratio:
            firing = False
        burst_end = next(
            (
                end
                for end in times
                if at <= end < at + window and _window_count(times, end, window) >= threshold
            ),
            None,
        )
        fired_end = scope["fired_end"]
        new = {**scope, "times": times, "firing": firing}
        if (
            burst_end is None
            or firing
            or (fired_end is not None and burst_end - window < fired_end)
        ):
            return new, None
        episode = scope["episode"] + 1
        new.update(firing=True, episode=episode, fired_end=burst_end)
        return new, (episode, _window_count(times, burst_end, window))

    def _anomaly(
        self,
        scope: str,
        data: OrderPaymentFailed,
        event: Event,
        now: datetime,
        threshold: int,
        params: Params,
        burst: tuple[int, int],
    ) -> AnomalyDetected:
        episode, failures = burst
        overall = scope == "overall"
        severity = "P2" if overall else "P3"
        identity = (
            {"scope": "overall"} if overall else {"scope": "channel", "channel": data.channel}
        )
        where = "across all channels" if overall else f"on channel {data.channel}"
        return AnomalyDetected(
            rule=self.name,
            fingerprint=fingerprint(self.name, identity, episode),
            severity=severity,
            team="finance",
            labels={**identity, "severity": severity, "team": "finance"},
            summary=(
                f"{failures} payment failures {where} within {timedelta(seconds=params.window_s)}"
                f" (threshold {threshold}); latest {data.provider} {data.code}"
            ),
            event_time=event.envelope.time,
            detected_at=now,
            source_event_id=event.id,
        )


class RefusedFact:
    """A fact the order's status refuses that a team must act on.

    Not a stream rule: the use case applying the fact finds it, from the order it has just
    read, and raises the anomaly built here. Configured like the rules (enabled; severity,
    overridable per channel). One per fact: the order and the payment or shipment are the
    fingerprint, so the same fact redelivered collapses downstream. Named so the routing
    file's `payment.*` (finance) and `shipment.*` (logistics) routes take them.
    """

    name: ClassVar[str]
    team: ClassVar[str]
    override_labels: ClassVar[tuple[str, ...]] = ("channel",)

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        severity: Severity = Field(default="P2", description="Severity of the anomaly")

    def __init__(self, config: RuleConfig[RefusedFact.Params]) -> None:
        self.config = config

    def _anomaly(
        self,
        order: Order,
        fact: dict[str, str],
        context: dict[str, str],
        summary: str,
        cause: Envelope,
        now: datetime,
    ) -> AnomalyDetected | None:
        """`fact` names the refused fact (its identity); `context` labels group it."""
        if not self.config.enabled:
            return None
        severity = self.config.params_for({"channel": order.channel}).severity
        identity = {"order_id": order.order_id, **fact}
        return AnomalyDetected(
            rule=self.name,
            fingerprint=fingerprint(self.name, identity, 0),
            severity=severity,
            team=self.team,
            labels={
                **identity,
                **context,
                "channel": order.channel,
                "severity": severity,
                "team": self.team,
            },
            summary=summary,
            event_time=cause.time,
            detected_at=now,
            source_event_id=cause.id,
        )


class PaymentCapturedAfterCancel(RefusedFact):
    """`payment.captured_after_cancel`: a payment captured on a cancelled order; money taken
    for nothing, so finance refunds it."""

    name = "payment.captured_after_cancel"
    team = "finance"

    def anomaly(
        self,
        order: Order,
        payment: PaymentSucceeded | PaymentAmountMismatch,
        cause: Envelope,
        now: datetime,
    ) -> AnomalyDetected | None:
        """The anomaly for this capture; None when the detectors file disables it."""
        return self._anomaly(
            order,
            {"payment_id": payment.payment_id},
            {"provider": payment.provider},
            f"payment {payment.payment_id} captured {payment.amount} on order {order.order_id},"
            " which is cancelled: refund it",
            cause,
            now,
        )


class ShipmentDispatchedWhileHeld(RefusedFact):
    """`shipment.dispatched_while_held`: a parcel left for a held order; logistics stops or
    recalls it."""

    name = "shipment.dispatched_while_held"
    team = "logistics"

    def anomaly(
        self, order: Order, dispatch: ShipmentDispatched, cause: Envelope, now: datetime
    ) -> AnomalyDetected | None:
        """The anomaly for this dispatch; None when the detectors file disables it."""
        return self._anomaly(
            order,
            {"shipment_id": dispatch.shipment_id},
            {"carrier": dispatch.carrier},
            f"shipment {dispatch.shipment_id} ({dispatch.carrier} {dispatch.tracking_number})"
            f" dispatched for order {order.order_id}, which is held ({order.hold_reason}):"
            " stop or recall it",
            cause,
            now,
        )


# The rules the detectors run (bootstrap.py) and the detectors file configures
# (cli/services_registry.py lists this tuple with the other services').
RULES = (DuplicateOrder, PaymentFailureBurst)
# Anomalies a use case raises while applying an event: configured by the same file.
USE_CASE_ANOMALIES = (PaymentCapturedAfterCancel, ShipmentDispatchedWhileHeld)
