"""The topic catalogue: every topic we own or accept, its key, its event types, who writes and reads it.

Pure data, in one place. Event types are the registered models (their names come from the
registry) and topic names come from `shared/topics.py`; `tests/unit/contract` checks the
consumers listed here against the handlers the services' workers run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from orderguard.shared.events import REGISTRY
from orderguard.shared.events.aftersales import CaseClosed, CaseOpened, CaseUpdated, RefundIssued
from orderguard.shared.events.anomalies import AnomalyDetected, AnomalyRouted
from orderguard.shared.events.carriers import CarrierScan
from orderguard.shared.events.inventory import (
    ReservationFailed,
    ReservationReleased,
    StockChanged,
    StockCommitted,
    StockCounted,
    StockReserved,
)
from orderguard.shared.events.logistics import (
    ShipmentCreated,
    ShipmentDelayCompensated,
    ShipmentDelivered,
    ShipmentDispatched,
    ShipmentExceptionReported,
    ShipmentReassigned,
    ShipmentScanned,
)
from orderguard.shared.events.notifications import NotificationFailed, NotificationRequested
from orderguard.shared.events.orders import (
    OrderCancelled,
    OrderCompleted,
    OrderHeld,
    OrderPaid,
    OrderPaymentFailed,
    OrderPlaced,
    OrderRefundRequested,
    OrderReleased,
    OrderShipped,
    ReservationRequested,
)
from orderguard.shared.events.payments import (
    PaymentAmountMismatch,
    PaymentFailed,
    PaymentSucceeded,
)
from orderguard.shared.events.recycle_bin import (
    OrderArchived,
    OrderPurged,
    OrderRecycled,
    OrderRestored,
)
from orderguard.shared.events.work_items import (
    WorkItemClaimed,
    WorkItemCommented,
    WorkItemDismissed,
    WorkItemEscalated,
    WorkItemOpened,
    WorkItemReassigned,
    WorkItemReopened,
    WorkItemResolved,
)
from orderguard.shared.topics import BASE_TOPICS, TEAMS, Topics

_BASE = Topics()


def _declared(name: str) -> str:
    """A topic name as `shared/topics.py` declares it; fails at import for a name it does not."""
    if name not in BASE_TOPICS:
        raise ValueError(f"topic {name!r} is not declared in shared/topics.py")
    return name


@dataclass(frozen=True)
class Consumer:
    """A handler of a service's worker reading a topic: the service and the handler's name (the
    worker reads every topic as one consumer group, `<service>.worker`)."""

    service: str
    handler: str


@dataclass(frozen=True)
class Message:
    """An event type flowing on a topic."""

    model: type[BaseModel]
    key: str  # dotted path into `data` whose value is the subject and the Kafka key
    producers: tuple[str, ...]
    consumers: tuple[Consumer, ...] = ()

    @property
    def event_type(self) -> str:
        return REGISTRY.type_of(self.model)

    def key_of(self, data: Mapping[str, Any]) -> Any:
        """The value at `key` in an event's data (None when a step is missing)."""
        value: Any = data
        for step in self.key.split("."):
            value = value.get(step) if isinstance(value, Mapping) else None
        return value


@dataclass(frozen=True)
class Topic:
    """One topic, or one family of topics when `address` has {parameters} (queues.{team})."""

    address: str
    title: str
    description: str
    key: str  # what the Kafka key is, in words
    owner: str
    messages: tuple[Message, ...] = ()
    parameters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """The concrete topic names (without a deployment's prefix)."""
        names = [self.address]
        for parameter, values in self.parameters.items():
            names = [
                name.replace("{" + parameter + "}", value) for name in names for value in values
            ]
        return names

    @property
    def event_types(self) -> list[str]:
        return [message.event_type for message in self.messages]


ORDER_ID = "order_id"
_SLA_DETECTOR = Consumer("aftersales", "aftersales.detector.case.sla_breached")
_LOGISTICS_STALLED = Consumer("logistics", "logistics.detector.shipment.stalled")
_LOGISTICS_OVERDUE = Consumer("logistics", "logistics.detector.shipment.overdue")

CATALOGUE: tuple[Topic, ...] = (
    Topic(
        address=_BASE.orders,
        title="Orders",
        description=(
            "What happens to orders: placed, paid, payment failed, held, released, shipped,"
            " cancelled, completed, and their moves through the recycle bin. Published by the"
            " order service"
            " through its outbox; an existing shop can publish its own orders here in the"
            " same envelope to have them watched."
        ),
        key="order id",
        owner="order",
        messages=(
            Message(
                OrderPlaced,
                key=ORDER_ID,
                producers=("order",),
                consumers=(
                    Consumer("inventory", "inventory.reservations"),
                    Consumer("aftersales", "aftersales.order-facts"),
                    Consumer("order", "order.detector.order.duplicate"),
                ),
            ),
            Message(
                OrderCancelled,
                key=ORDER_ID,
                producers=("order",),
                consumers=(Consumer("inventory", "inventory.reservations"),),
            ),
            Message(
                OrderPaid,
                key=ORDER_ID,
                producers=("order",),
                consumers=(
                    Consumer("aftersales", "aftersales.order-facts"),
                    Consumer("logistics", "logistics.shipments"),
                ),
            ),
            Message(
                OrderShipped,
                key=ORDER_ID,
                producers=("order",),
                consumers=(Consumer("inventory", "inventory.reservations"),),
            ),
            # The order recycle bin: moves of an order's bin entry.
            Message(OrderRecycled, key=ORDER_ID, producers=("order",)),
            Message(OrderRestored, key=ORDER_ID, producers=("order",)),
            Message(OrderArchived, key=ORDER_ID, producers=("order",)),
            Message(OrderPurged, key=ORDER_ID, producers=("order",)),
            Message(
                OrderPaymentFailed,
                key=ORDER_ID,
                producers=("order",),
                consumers=(Consumer("order", "order.detector.payment.failures"),),
            ),
            Message(OrderHeld, key=ORDER_ID, producers=("order",)),
            Message(OrderReleased, key=ORDER_ID, producers=("order",)),
            Message(
                OrderRefundRequested,
                key=ORDER_ID,
                producers=("order",),
                consumers=(Consumer("aftersales", "aftersales.order-facts"),),
            ),
            Message(
                ReservationRequested,
                key=ORDER_ID,
                producers=("order",),
                consumers=(Consumer("inventory", "inventory.reservations"),),
            ),
            Message(OrderCompleted, key=ORDER_ID, producers=("order",)),
        ),
    ),
    Topic(
        address=_BASE.inventory,
        title="Inventory",
        description=(
            "Stock levels and reservations. Stock changes are keyed by SKU (all warehouses of"
            " a SKU on one partition); reservation outcomes are keyed by order id."
        ),
        key="SKU for stock changes, order id for reservations",
        owner="inventory",
        messages=(
            Message(
                StockChanged,
                key="sku",
                producers=("inventory",),
                consumers=(
                    Consumer("inventory", "inventory.detector.stock.low"),
                    Consumer("inventory", "inventory.detector.inventory.negative_available"),
                ),
            ),
            Message(
                StockReserved,
                key=ORDER_ID,
                producers=("inventory",),
                consumers=(Consumer("order", "order.inventory-outcomes"),),
            ),
            Message(
                ReservationFailed,
                key=ORDER_ID,
                producers=("inventory",),
                consumers=(Consumer("order", "order.inventory-outcomes"),),
            ),
            Message(
                ReservationReleased,
                key=ORDER_ID,
                producers=("inventory",),
                consumers=(Consumer("order", "order.inventory-outcomes"),),
            ),
            Message(StockCommitted, key=ORDER_ID, producers=("inventory",)),
            Message(
                StockCounted,
                key="sku",
                producers=("inventory",),
                consumers=(Consumer("inventory", "inventory.detector.inventory.inconsistent"),),
            ),
        ),
    ),
    Topic(
        address=_declared("logistics.events"),
        title="Logistics",
        description=(
            "Shipments: created for a paid order, scanned, dispatched, delivered, exceptions"
            " reported by the carrier, reassigned to another carrier, delays compensated. The"
            " logistics detectors read these (not raw scans): only the service knows which"
            " shipment a tracking number is, and the order's promised date."
        ),
        key="shipment id",
        owner="logistics",
        messages=(
            Message(
                ShipmentCreated,
                key="shipment_id",
                producers=("logistics",),
                consumers=(_LOGISTICS_STALLED, _LOGISTICS_OVERDUE),
            ),
            Message(
                ShipmentScanned,
                key="shipment_id",
                producers=("logistics",),
                consumers=(_LOGISTICS_STALLED, _LOGISTICS_OVERDUE),
            ),
            Message(
                ShipmentDispatched,
                key="shipment_id",
                producers=("logistics",),
                consumers=(Consumer("order", "order.shipments"),),
            ),
            Message(
                ShipmentDelivered,
                key="shipment_id",
                producers=("logistics",),
                consumers=(
                    Consumer("aftersales", "aftersales.deliveries"),
                    Consumer("order", "order.shipments"),
                ),
            ),
            Message(
                ShipmentExceptionReported,
                key="shipment_id",
                producers=("logistics",),
                consumers=(
                    Consumer("logistics", "logistics.detector.shipment.exception"),
                    Consumer("aftersales", "aftersales.deliveries"),
                    _LOGISTICS_STALLED,
                    _LOGISTICS_OVERDUE,
                ),
            ),
            Message(
                ShipmentReassigned,
                key="shipment_id",
                producers=("logistics",),
                consumers=(_LOGISTICS_STALLED, _LOGISTICS_OVERDUE),
            ),
            Message(ShipmentDelayCompensated, key="shipment_id", producers=("logistics",)),
        ),
    ),
    Topic(
        address=_declared("aftersales.events"),
        title="After-sales",
        description="After-sales cases (opened, updated, closed) and refunds.",
        key="case id",
        owner="aftersales",
        messages=(
            Message(
                CaseOpened,
                key="case_id",
                producers=("aftersales",),
                consumers=(_SLA_DETECTOR, Consumer("order", "order.recycle-bin.aftersales")),
            ),
            Message(
                CaseClosed,
                key="case_id",
                producers=("aftersales",),
                consumers=(_SLA_DETECTOR, Consumer("order", "order.recycle-bin.aftersales")),
            ),
            Message(
                RefundIssued,
                key="case_id",
                producers=("aftersales",),
                consumers=(
                    Consumer("aftersales", "aftersales.detector.refund.repeated"),
                    Consumer("order", "order.recycle-bin.aftersales"),
                ),
            ),
            Message(
                CaseUpdated,
                key="case_id",
                producers=("aftersales",),
                consumers=(_SLA_DETECTOR,),
            ),
        ),
    ),
    Topic(
        address=_declared("payments.events"),
        title="Payments",
        description=(
            "Published by payment services outside orderguard (or POSTed to an ingest"
            " endpoint): a payment for an order succeeded, failed, or captured another amount"
            " than the order's total."
        ),
        key="order id",
        owner="payment services (outside orderguard)",
        messages=(
            Message(
                PaymentSucceeded,
                key=ORDER_ID,
                producers=("payment services",),
                consumers=(Consumer("order", "order.payments"),),
            ),
            Message(
                PaymentFailed,
                key=ORDER_ID,
                producers=("payment services",),
                consumers=(Consumer("order", "order.payments"),),
            ),
            Message(
                PaymentAmountMismatch,
                key=ORDER_ID,
                producers=("payment services",),
                consumers=(Consumer("order", "order.payments"),),
            ),
        ),
    ),
    Topic(
        address=_declared("notifications.requests"),
        title="Notification requests",
        description=(
            "Requests to notify people (customers, teams): a template and its parameters; the"
            " notifier chooses channels and language."
        ),
        key="recipient id",
        owner="notifier",
        messages=(
            Message(
                NotificationRequested,
                key="recipient.id",
                producers=("order", "inventory", "logistics", "aftersales", "notifier"),
                consumers=(Consumer("notifier", "notifier.deliveries"),),
            ),
        ),
    ),
    Topic(
        address=_BASE.anomalies,
        title="Detected anomalies",
        description=(
            "What the detectors found, before routing. Duplicates share a fingerprint and"
            " collapse downstream."
        ),
        key="anomaly fingerprint",
        owner="the detectors",
        messages=(
            Message(
                AnomalyDetected,
                key="fingerprint",
                producers=("order", "inventory", "aftersales", "logistics"),
                consumers=(
                    Consumer("notifier", "notifier.router"),
                    Consumer("notifier", "notifier.work-items.clearances"),
                    Consumer("order", "order.recycle-bin.anomalies"),
                ),
            ),
        ),
    ),
    Topic(
        address=_BASE.queue("{team}"),
        title="Team queues",
        description=(
            "One topic per team: the anomalies routed to it, for machines. People see them as"
            " work items."
        ),
        key="group_key when the route groups (all of a group on one partition), else the anomaly"
        " fingerprint",
        owner="notifier",
        parameters={"team": TEAMS},
        messages=(
            Message(
                AnomalyRouted,
                key="anomaly.fingerprint",
                producers=("notifier",),
                consumers=(
                    Consumer("notifier", "notifier.notifications"),
                    Consumer("notifier", "notifier.work-items"),
                ),
            ),
        ),
    ),
    Topic(
        address=_declared("carriers.scans"),
        title="Carrier scans",
        description=(
            "Tracking scans published by carriers outside orderguard, and the scans the"
            " logistics webhook (POST /carriers/{carrier}/scans, HMAC-signed) accepted. Applied"
            " once per carrier and scan id; late scans are kept without moving a shipment back."
        ),
        key="tracking number",
        owner="carriers (outside orderguard)",
        messages=(
            Message(
                CarrierScan,
                key="tracking_number",
                producers=("carriers", "logistics"),
                consumers=(Consumer("logistics", "logistics.scans"),),
            ),
        ),
    ),
    Topic(
        address=_declared("notifications.dead"),
        title="Failed notifications",
        description=(
            "Messages the notifier gave up on, with the reason: a channel refused them for"
            " good, every retry failed, the template could not be rendered, or no channel"
            " could reach the recipient. A failed delivery can be resent over HTTP"
            " (POST /deliveries/{id}/resend)."
        ),
        key="recipient id",
        owner="notifier",
        messages=(Message(NotificationFailed, key="recipient.id", producers=("notifier",)),),
    ),
    Topic(
        address=_declared("work_items.events"),
        title="Work items",
        description=(
            "What happens to the work items people see in their team's queue: opened, claimed,"
            " commented, escalated, resolved, dismissed, reopened, reassigned; each with the item as it is"
            " after the change, for other systems to follow."
        ),
        key="work item id",
        owner="notifier",
        messages=tuple(
            Message(model, key="work_item_id", producers=("notifier",))
            for model in (
                WorkItemOpened,
                WorkItemClaimed,
                WorkItemCommented,
                WorkItemEscalated,
                WorkItemResolved,
                WorkItemDismissed,
                WorkItemReopened,
                WorkItemReassigned,
            )
        ),
    ),
)


class NotCatalogued(LookupError):
    pass


def messages_of(event_type: str) -> list[tuple[Topic, Message]]:
    """Every (topic, message) an event type flows as."""
    return [
        (topic, message)
        for topic in CATALOGUE
        for message in topic.messages
        if message.event_type == event_type
    ]


def message_of(event_type: str) -> tuple[Topic, Message]:
    """The one topic an event type flows on; NotCatalogued when none (or several)."""
    found = messages_of(event_type)
    if len(found) != 1:
        raise NotCatalogued(
            f"event type {event_type!r} is on {len(found)} catalogued topics, not exactly one"
        )
    return found[0]


def uncatalogued_event_types() -> list[str]:
    """Registered event types no topic lists: each must be catalogued before it is published."""
    listed = {message.event_type for topic in CATALOGUE for message in topic.messages}
    return [name for name in REGISTRY if name not in listed]
