"""Typed event models: the contract between our services and with outside publishers.

Importing this package registers every event type.
"""

from orderguard.shared.events import (  # noqa: F401  (registration)
    aftersales,
    anomalies,
    carriers,
    inventory,
    logistics,
    notifications,
    orders,
    payments,
    recycle_bin,
    work_items,
)
from orderguard.shared.events.registry import REGISTRY, EventRegistry, UnknownEventType, event_type

__all__ = ["REGISTRY", "EventRegistry", "UnknownEventType", "event_type"]
