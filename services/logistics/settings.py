"""The logistics service's own settings: ORDERGUARD_LOGISTICS__<FIELD> (docs/settings.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from orderguard.shared.settings import ServiceSettings


class DelayCompensation(BaseModel):
    """What a customer gets for a delayed shipment: a coupon (yuan) or points."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["coupon", "points"] = Field(description="coupon or points")
    amount: Decimal = Field(gt=0, decimal_places=2, description="Yuan or points")


class LogisticsSettings(ServiceSettings):
    """Carriers, their webhooks' secrets, and delay compensation."""

    default_carrier: str = Field(
        default="sf-express",
        min_length=1,
        description="The carrier of a new shipment whose warehouse has none of its own",
    )
    carrier_by_warehouse: dict[str, str] = Field(
        default_factory=dict, description="Warehouse -> the carrier of its new shipments"
    )
    carrier_secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Carrier code -> the secret its webhook signs scans with (HMAC-SHA256)",
    )
    carrier_signature_tolerance_s: float = Field(
        default=300.0,
        gt=0,
        description="A signed webhook request whose timestamp is further than this from now is"
        " refused",
    )
    delay_compensation: dict[Literal["overdue", "stalled"], DelayCompensation] = Field(
        # pydantic copies a mutable default per instance (mypy cannot type the Literal keys of
        # a default_factory's lambda)
        default={
            "overdue": DelayCompensation(kind="coupon", amount=Decimal("10")),
            "stalled": DelayCompensation(kind="points", amount=Decimal("100")),
        },
        description="What the customer gets per delay reason, once per shipment",
    )
    overdue_compensation_after_s: float = Field(
        default=0.0,
        ge=0,
        description="Compensate an undelivered shipment this long after its promised date",
    )
    stall_compensation_after_s: float = Field(
        default=48 * 3600.0,
        gt=0,
        description="Compensate an in-transit shipment this long after its last scan",
    )
