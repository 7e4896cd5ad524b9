"""Events the logistics service publishes on `logistics.events` (key: shipment id).

The detectors of shipments (`services/logistics/rules.py`) read only these: created (arms the
overdue deadline), scanned (moves or clears the stall deadline), exception reported and
reassigned. They never read the service's tables, so a shop that publishes the same events is
watched the same way."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orderguard.shared.events.registry import event_type

_SHIPMENT = {
    "shipment_id": "shp_01KAQ6B1C2D3E4F5G6H7J8K9M0",
    "order_id": "ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9",
    "carrier": "sf-express",
    "tracking_number": "SF1234567890123",
}


@event_type("shipment.dispatched.v1")
class ShipmentDispatched(BaseModel):
    """The carrier took the parcel (its first scan). The order becomes shipped."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {**_SHIPMENT, "warehouse": "main", "dispatched_at": "2026-11-22T15:00:00Z"}
            ]
        }
    )

    shipment_id: str = Field(
        description="The shipment's id; also the event's subject and Kafka key"
    )
    order_id: str
    carrier: str = Field(description="Carrier code, e.g. sf-express")
    tracking_number: str
    warehouse: str
    dispatched_at: datetime


@event_type("shipment.delivered.v1")
class ShipmentDelivered(BaseModel):
    """The carrier reported the parcel delivered. The order becomes delivered."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{**_SHIPMENT, "delivered_at": "2026-11-24T10:12:00Z"}]}
    )

    shipment_id: str = Field(
        description="The shipment's id; also the event's subject and Kafka key"
    )
    order_id: str
    carrier: str
    tracking_number: str
    delivered_at: datetime


# -- what the logistics service records about a shipment, for its own detectors and others --------

ExceptionReason = Literal["lost", "damaged", "address_problem", "refused"]
ShipmentStatus = Literal["created", "picked_up", "in_transit", "out_for_delivery", "delivered"]
ScanStatus = Literal["picked_up", "in_transit", "out_for_delivery", "delivered", "exception"]


@event_type("shipment.created.v1")
class ShipmentCreated(BaseModel):
    """A paid order got its shipment: carrier chosen, tracking number assigned, delivery promised."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_SHIPMENT,
                    "warehouse": "main",
                    "promised_delivery_by": "2026-11-25T18:00:00Z",
                    "created_at": "2026-11-22T08:01:31Z",
                }
            ]
        }
    )

    shipment_id: str = Field(
        description="The shipment's id; also the event's subject and Kafka key"
    )
    order_id: str
    carrier: str
    tracking_number: str
    warehouse: str
    promised_delivery_by: datetime = Field(description="The order's promised delivery date")
    created_at: datetime


@event_type("shipment.scanned.v1")
class ShipmentScanned(BaseModel):
    """A carrier scan was applied to the shipment (once per scan id). A late or out-of-order scan
    is kept in the history without moving the status back: `status_changed` is then false."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_SHIPMENT,
                    "scan_id": "sf-scan-000123",
                    "scan_status": "in_transit",
                    "location": "Hangzhou hub",
                    "exception_reason": None,
                    "scanned_at": "2026-11-22T20:14:00Z",
                    "shipment_status": "in_transit",
                    "status_changed": True,
                }
            ]
        }
    )

    shipment_id: str = Field(
        description="The shipment's id; also the event's subject and Kafka key"
    )
    order_id: str
    carrier: str = Field(description="The carrier that scanned")
    tracking_number: str = Field(description="The tracking number the scan was for")
    scan_id: str
    scan_status: ScanStatus
    location: str | None = None
    exception_reason: ExceptionReason | None = None
    scanned_at: datetime = Field(description="When the carrier scanned (event time)")
    shipment_status: ShipmentStatus = Field(description="The shipment's status after the scan")
    status_changed: bool = Field(description="False for a late, repeated or exception scan")


@event_type("shipment.exception_reported.v1")
class ShipmentExceptionReported(BaseModel):
    """The carrier reported a problem with the parcel (lost, damaged, address problem, refused)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_SHIPMENT,
                    "warehouse": "main",
                    "scan_id": "sf-scan-000124",
                    "reason": "damaged",
                    "location": "Hangzhou hub",
                    "reported_at": "2026-11-22T21:00:00Z",
                }
            ]
        }
    )

    shipment_id: str = Field(
        description="The shipment's id; also the event's subject and Kafka key"
    )
    order_id: str
    carrier: str
    tracking_number: str
    warehouse: str
    scan_id: str
    reason: ExceptionReason
    location: str | None = None
    reported_at: datetime = Field(description="When the carrier scanned the exception")


@event_type("shipment.reassigned.v1")
class ShipmentReassigned(BaseModel):
    """The shipment moved to another carrier with a new tracking number; its history is kept."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "shipment_id": _SHIPMENT["shipment_id"],
                    "order_id": _SHIPMENT["order_id"],
                    "previous_carrier": "sf-express",
                    "previous_tracking_number": "SF1234567890123",
                    "carrier": "zto",
                    "tracking_number": "ZTO7700112233",
                    "reason": "parcel stuck at the hub",
                    "reassigned_by": "logistics:write#3f2a9c1d",
                    "reassigned_at": "2026-11-23T09:00:00Z",
                }
            ]
        }
    )

    shipment_id: str = Field(
        description="The shipment's id; also the event's subject and Kafka key"
    )
    order_id: str
    previous_carrier: str
    previous_tracking_number: str
    carrier: str
    tracking_number: str
    reason: str
    reassigned_by: str = Field(description="Who reassigned it (API scope and key id)")
    reassigned_at: datetime


@event_type("shipment.delay_compensated.v1")
class ShipmentDelayCompensated(BaseModel):
    """The customer is compensated for a late or stalled shipment, once per shipment."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "shipment_id": _SHIPMENT["shipment_id"],
                    "order_id": _SHIPMENT["order_id"],
                    "customer_id": "cust-1042",
                    "carrier": "sf-express",
                    "reason": "overdue",
                    "kind": "coupon",
                    "amount": "10.00",
                    "compensated_at": "2026-11-25T18:05:00Z",
                }
            ]
        }
    )

    shipment_id: str = Field(
        description="The shipment's id; also the event's subject and Kafka key"
    )
    order_id: str
    customer_id: str
    carrier: str
    reason: Literal["overdue", "stalled"]
    kind: Literal["coupon", "points"] = Field(description="What the customer gets")
    amount: Decimal = Field(description="Coupon value in yuan, or a number of points")
    compensated_at: datetime
