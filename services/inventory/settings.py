"""The inventory service's own settings: ORDERGUARD_INVENTORY__<FIELD> (docs/settings.md)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from orderguard.shared.settings import ServiceSettings


class InventorySettings(ServiceSettings):
    """Stock thresholds."""

    default_low_stock_threshold: int = Field(
        default=10,
        ge=0,
        description="The built-in `threshold` of stock.low (the detectors file and a SKU's own"
        " win)",
    )

    def detector_defaults(self) -> dict[str, dict[str, Any]]:
        return {"stock.low": {"threshold": self.default_low_stock_threshold}}
