"""Events the logistics service publishes on `logistics.events` (key: shipment id)."""

from __future__ import annotations

from datetime import datetime

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
