"""The order service's own settings: ORDERGUARD_ORDER__<FIELD> (docs/settings.md)."""

from __future__ import annotations

from pydantic import Field

from orderguard.shared.settings import ServiceSettings


class OrderSettings(ServiceSettings):
    """The order lifecycle's clocks and the recycle bin."""

    payment_deadline_s: float = Field(
        default=30 * 60,
        gt=0,
        description="An order unpaid this long after placement is cancelled (payment_timeout)",
    )
    delivery_promise_days: int = Field(
        default=3, ge=0, description="Delivery promised when a standard order is paid (days)"
    )
    express_delivery_promise_days: int = Field(
        default=1, ge=0, description="Delivery promised when an express order is paid (days)"
    )
    complete_after_days: float = Field(
        default=7.0, ge=0, description="A delivered order completes after this many days"
    )
    recycle_bin_anomaly_rules: dict[str, str] = Field(
        default_factory=lambda: {"order.duplicate": "abnormal"},
        description="Anomaly rule -> recycle bin category, for anomalies whose labels name an"
        " order_id (categories checked at start-up)",
    )
    recycle_bin_quiet_period_s: float = Field(
        default=30 * 24 * 3600,
        gt=0,
        description="A recycle bin entry without a case is archived after this long",
    )
    recycle_bin_retention_s: float = Field(
        default=180 * 24 * 3600,
        gt=0,
        description="An archived entry loses its personal data after this long",
    )
