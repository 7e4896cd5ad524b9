"""Time compression: a simulated shop day played in a few real seconds.

The shop lives on simulated time (a parcel is scanned every few hours, a case is answered within
a day). `speedup` maps it onto the wall clock: `real = simulated / speedup`. The detectors must
see the same compression, so the scenario writes a detectors file whose silences and windows
are the real-world ones divided by `speedup` — except the windows that measure how close two
events stamped by a *service* are (duplicate orders, repeated refunds): HTTP latency does not
shrink with the speed-up, so those keep at least `closeness_floor_s` of real time (the plan
never repeats them on clean traffic, whatever the window).

The order service takes its delivery promise in whole days, so the scenario runs it with a
promise of 0 days and moves the promise into `shipment.overdue`'s `grace_hours` (see
`SYSTEM_ENV`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

HOUR = 3600.0
DAY = 24 * HOUR

# The real-world parameters the scenario's shop is played against (simulated seconds).
STALL_SILENCE_S = 24 * HOUR  # shipment.stalled silence_hours (the built-in default)
FIRST_RESPONSE_S = 24 * HOUR  # case.sla_breached first_response_s (the built-in default)
DELIVERY_PROMISE_S = 3 * DAY  # the order service's standard promise (3 days)
DUPLICATE_WINDOW_S = 600.0  # order.duplicate window_s
PAYMENT_WINDOW_S = 300.0  # payment.failures window_s
REFUND_WINDOW_S = 30 * DAY  # refund.repeated window_s
PAYMENT_THRESHOLD = 5
PAYMENT_OVERALL_THRESHOLD = 10
REFUND_THRESHOLD = 3

# Settings the system under test needs besides the detectors file (environment variables).
SYSTEM_ENV = {
    # the promise is carried by shipment.overdue's grace, scaled (days cannot be scaled)
    "ORDERGUARD_ORDER__DELIVERY_PROMISE_DAYS": "0",
    "ORDERGUARD_ORDER__EXPRESS_DELIVERY_PROMISE_DAYS": "0",
    # silences are seconds long here: no lateness allowance, a quiet partition follows the wall soon
    "ORDERGUARD_DETECTOR_ALLOWED_LATENESS_S": "0",
    "ORDERGUARD_DETECTOR_IDLE_AFTER_S": "0.5",
}


@dataclass(frozen=True)
class Windows:
    """What the plan must respect, in simulated seconds (after the floors)."""

    stall_silence_s: float
    first_response_s: float
    delivery_promise_s: float
    duplicate_window_s: float
    payment_window_s: float
    refund_window_s: float
    # a burst's failures are spread over a third of the real-world window
    payment_burst_span_s: float = PAYMENT_WINDOW_S / 3
    payment_threshold: int = PAYMENT_THRESHOLD
    payment_overall_threshold: int = PAYMENT_OVERALL_THRESHOLD
    refund_threshold: int = REFUND_THRESHOLD


@dataclass(frozen=True)
class Scale:
    speedup: float = 1440.0
    closeness_floor_s: float = 30.0
    # payment.failures counts on the payment's own time, which the generator stamps from the
    # plan; the floor keeps failures handled out of order (across partitions, under load)
    # inside the rule's 2-window memory
    payment_floor_s: float = 10.0

    def __post_init__(self) -> None:
        if self.speedup <= 0:
            raise ValueError("speedup must be positive")

    def real(self, simulated_s: float) -> float:
        return simulated_s / self.speedup

    def simulated(self, real_s: float) -> float:
        return real_s * self.speedup

    def _closeness(self, simulated_s: float) -> float:
        """Real seconds of a closeness window: scaled, but never under the floor."""
        return max(self.real(simulated_s), self.closeness_floor_s)

    def detector_params(self) -> dict[str, dict[str, Any]]:
        """Per rule, the params of the detectors file (real seconds)."""
        return {
            "shipment.stalled": {"silence_hours": self.real(STALL_SILENCE_S) / HOUR},
            "shipment.overdue": {"grace_hours": self.real(DELIVERY_PROMISE_S) / HOUR},
            "case.sla_breached": {"first_response_s": self.real(FIRST_RESPONSE_S)},
            "order.duplicate": {"window_s": self._closeness(DUPLICATE_WINDOW_S)},
            "payment.failures": {
                "window_s": max(self.real(PAYMENT_WINDOW_S), self.payment_floor_s),
                "threshold": PAYMENT_THRESHOLD,
                "overall_threshold": PAYMENT_OVERALL_THRESHOLD,
            },
            "refund.repeated": {
                "window_s": self._closeness(REFUND_WINDOW_S),
                "threshold": REFUND_THRESHOLD,
            },
            "inventory.inconsistent": {"tolerance": 0},
        }

    def detectors_yaml(self) -> str:
        rules = {name: {"params": params} for name, params in self.detector_params().items()}
        header = (
            f"# Written by `orderguard scenario` for speedup {self.speedup:g}: real-world windows"
            f" divided by it\n# (closeness windows at least {self.closeness_floor_s:g} s, the payment"
            f" window {self.payment_floor_s:g} s)."
            " Run the system with ORDERGUARD_DETECTORS_FILE\n# pointing here and: "
            + " ".join(f"{k}={v}" for k, v in SYSTEM_ENV.items())
            + "\n"
        )
        return header + yaml.safe_dump({"rules": rules}, sort_keys=True)

    def windows(self) -> Windows:
        params = self.detector_params()
        return Windows(
            stall_silence_s=STALL_SILENCE_S,
            first_response_s=FIRST_RESPONSE_S,
            delivery_promise_s=DELIVERY_PROMISE_S,
            duplicate_window_s=self.simulated(params["order.duplicate"]["window_s"]),
            payment_window_s=self.simulated(params["payment.failures"]["window_s"]),
            refund_window_s=self.simulated(params["refund.repeated"]["window_s"]),
        )
