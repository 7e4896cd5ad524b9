"""The composition root's knowledge of the services: each by name (its definition is imported
only when it runs), their settings sections composed into the settings every process reads, and
the detector rules they declare, for what every process checks or replays across services (the
detectors file is shared; a backtest replays every rule)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from pydantic import Field, model_validator

from orderguard.services.aftersales import rules as aftersales
from orderguard.services.aftersales.settings import AftersalesSettings
from orderguard.services.inventory import rules as inventory
from orderguard.services.inventory.settings import InventorySettings
from orderguard.services.logistics import rules as logistics
from orderguard.services.logistics.settings import LogisticsSettings
from orderguard.services.notifier.settings import NotifierSettings
from orderguard.services.order import rules as order
from orderguard.services.order.settings import OrderSettings
from orderguard.shared.detection.config import ConfigurableRule
from orderguard.shared.detection.rule import Rule
from orderguard.shared.runtime import ServiceDefinition
from orderguard.shared.settings import SERVICES, Settings


class OrderguardSettings(Settings):
    """The settings every orderguard process reads: the common ones (ORDERGUARD_<FIELD>) and
    each service's own section (ORDERGUARD_<SERVICE>__<FIELD>), one field per service named as
    the service is (`Settings.section` finds them)."""

    order: OrderSettings = Field(default_factory=OrderSettings, description="Order service")
    inventory: InventorySettings = Field(
        default_factory=InventorySettings, description="Inventory service"
    )
    logistics: LogisticsSettings = Field(
        default_factory=LogisticsSettings, description="Logistics service"
    )
    aftersales: AftersalesSettings = Field(
        default_factory=AftersalesSettings, description="After-sales service"
    )
    notifier: NotifierSettings = Field(
        default_factory=NotifierSettings, description="Notifier service"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_renamed_variables(cls, values: Any) -> Any:
        # A renamed variable left in a deployment would be ignored silently: refuse to start.
        set_names = {name.upper() for name in os.environ}
        stale = [
            f"{old} is now {new}"
            for old, new in RENAMED.items()
            if old in set_names or any(name.startswith(f"{old}__") for name in set_names)
        ]
        if stale:
            raise ValueError(f"renamed settings are set: {'; '.join(stale)} (docs/settings.md)")
        return values


# Settings renamed when each service's own moved into its section: old name -> new name (the
# variables under an old section's name, e.g. ORDERGUARD_CHANNELS__SMS__URL, moved with it).
RENAMED: dict[str, str] = {
    **{
        f"ORDERGUARD_ORDER_{name}": f"ORDERGUARD_ORDER__{name}"
        for name in (
            "PAYMENT_DEADLINE_S",
            "DELIVERY_PROMISE_DAYS",
            "EXPRESS_DELIVERY_PROMISE_DAYS",
            "COMPLETE_AFTER_DAYS",
        )
    },
    **{
        f"ORDERGUARD_RECYCLE_BIN_{name}": f"ORDERGUARD_ORDER__RECYCLE_BIN_{name}"
        for name in ("ANOMALY_RULES", "QUIET_PERIOD_S", "RETENTION_S")
    },
    "ORDERGUARD_DEFAULT_LOW_STOCK_THRESHOLD": "ORDERGUARD_INVENTORY__DEFAULT_LOW_STOCK_THRESHOLD",
    **{
        f"ORDERGUARD_LOGISTICS_{name}": f"ORDERGUARD_LOGISTICS__{name}"
        for name in (
            "DEFAULT_CARRIER",
            "CARRIER_BY_WAREHOUSE",
            "DELAY_COMPENSATION",
            "OVERDUE_COMPENSATION_AFTER_S",
            "STALL_COMPENSATION_AFTER_S",
        )
    },
    **{
        f"ORDERGUARD_CARRIER_{name}": f"ORDERGUARD_LOGISTICS__CARRIER_{name}"
        for name in ("SECRETS", "SIGNATURE_TOLERANCE_S")
    },
    **{
        f"ORDERGUARD_AFTERSALES_{name}": f"ORDERGUARD_AFTERSALES__{name}"
        for name in (
            "RETURN_WINDOW_DAYS",
            "ATTACHMENTS_DIR",
            "ATTACHMENT_MAX_BYTES",
            "ATTACHMENT_TYPES",
        )
    },
    **{
        f"ORDERGUARD_{name}": f"ORDERGUARD_NOTIFIER__{name}"
        for name in (
            "CHANNELS",
            "DELIVERIES",
            "ROUTING_FILE",
            "ROUTING_RELOAD_INTERVAL_S",
            "WORK_ITEM_CLAIM_WITHIN_S",
            "WORK_ITEM_REMINDER_EVERY_S",
            "WORK_ITEM_REOPEN_WINDOW_S",
            "WORK_ITEM_MAX_TIER",
            "CONSOLE_SESSION_IDLE_S",
            "CONSOLE_SESSION_ABSOLUTE_S",
            "CONSOLE_COOKIE_SECURE",
            "CONSOLE_ORDER_URL",
            "CONSOLE_API_KEY",
        )
    },
    **{
        f"ORDERGUARD_RETENTION__{name}": f"ORDERGUARD_NOTIFIER__RETENTION__{name}"
        for name in ("RESOLVED_ANOMALIES_S", "OPEN_ANOMALIES_S", "DELIVERIES_S")
    },
}


# The services' stream rules: each `rules.RULES`, the very tuple its bootstrap runs.
STREAM_RULES: tuple[Callable[[Any], Rule], ...] = (
    *inventory.RULES,
    *aftersales.RULES,
    *logistics.RULES,
    *order.RULES,
)
# Anomalies raised by a use case while it applies an event, configured like the rules.
USE_CASE_ANOMALIES = (*inventory.USE_CASE_ANOMALIES, *order.USE_CASE_ANOMALIES)


def definition_of(service: str) -> ServiceDefinition:
    if service not in SERVICES:
        raise KeyError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    module = importlib.import_module(f"orderguard.services.{service}.bootstrap")
    return module.DEFINITION


def rule_catalogue() -> list[ConfigurableRule]:
    """Everything the detectors file configures: every stream rule and use-case anomaly."""
    return [*STREAM_RULES, *USE_CASE_ANOMALIES]  # type: ignore[list-item]
