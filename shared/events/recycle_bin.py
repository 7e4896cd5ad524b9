"""Events of the order recycle bin, on `orders.events` (key: order id).

An order moves into the bin (recycled), out of it (restored), is archived when its case closes or
after a quiet period, and has its personal data purged after the retention. The order itself is
never deleted: these events say what happened to its bin entry.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orderguard.shared.events.registry import event_type

# The bin's categories: a closed set, so reports and metrics stay bounded.
RecycleCategory = Literal[
    "refund",
    "return",
    "exchange",
    "complaint",
    "abnormal",
    "deleted_by_mistake",
    "held",
    "other",
]

_ENTRY = {
    "order_id": "ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9",
    "entry_id": "rb_01KAQ9D0E1F2G3H4J5K6M7N8P9",
    "category": "refund",
}


@event_type("order.recycled.v1")
class OrderRecycled(BaseModel):
    """An order went into the recycle bin, with a reason and a category. The order stays whole."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_ENTRY,
                    "reason": "refund 39.90 issued: arrived chipped",
                    "case_id": "case_01KAQ7A0B1C2D3E4F5G6H7J8K9",
                    "moved_by": "consumer:order.recycle-bin.aftersales",
                    "order_status": "placed",
                    "channel": "web",
                    "amount": "137.80",
                    "moved_at": "2026-11-27T11:00:01Z",
                }
            ]
        }
    )

    order_id: str = Field(description="The order's id; also the event's subject and Kafka key")
    entry_id: str = Field(description="The bin entry (one per stay in the bin)")
    category: RecycleCategory
    reason: str
    case_id: str | None = Field(
        default=None, description="The after-sales case, when one caused it"
    )
    moved_by: str = Field(description="Who or what moved it, as kind:id (api, consumer, rule)")
    order_status: str = Field(description="The order's status when it went in")
    channel: str
    amount: Decimal = Field(description="The order's total in yuan")
    moved_at: datetime


@event_type("order.restored.v1")
class OrderRestored(BaseModel):
    """An order came back out of the recycle bin, to the status it had."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_ENTRY,
                    "restored_by": "api:orders:write#3f2a9c1d",
                    "reason": "refund reversed by the bank",
                    "order_status": "placed",
                    "restored_at": "2026-11-27T15:00:00Z",
                }
            ]
        }
    )

    order_id: str = Field(description="The order's id; also the event's subject and Kafka key")
    entry_id: str
    category: RecycleCategory
    restored_by: str
    reason: str | None = None
    order_status: str = Field(description="The order's status, which the bin leaves as it is")
    restored_at: datetime


@event_type("order.archived.v1")
class OrderArchived(BaseModel):
    """A binned order is done with: its case closed, or it stayed quiet for the configured period."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_ENTRY,
                    "archived_by": "consumer:order.recycle-bin.aftersales",
                    "reason": "case case_01KAQ7A0B1C2D3E4F5G6H7J8K9 closed: refunded",
                    "case_id": "case_01KAQ7A0B1C2D3E4F5G6H7J8K9",
                    "archived_at": "2026-11-28T17:30:01Z",
                }
            ]
        }
    )

    order_id: str = Field(description="The order's id; also the event's subject and Kafka key")
    entry_id: str
    category: RecycleCategory
    archived_by: str
    reason: str
    case_id: str | None = None
    archived_at: datetime


@event_type("order.purged.v1")
class OrderPurged(BaseModel):
    """An archived order's personal data was removed after the retention period; its
    non-personal facts (lines, amounts, channel, timeline) stay for analytics."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_ENTRY,
                    "purged_fields": [
                        "phone",
                        "shipping_address.district",
                        "shipping_address.street",
                        "shipping_address.recipient",
                        "shipping_address.postal_code",
                    ],
                    "purged_at": "2027-05-27T03:00:00Z",
                }
            ]
        }
    )

    order_id: str = Field(description="The order's id; also the event's subject and Kafka key")
    entry_id: str
    category: RecycleCategory
    purged_fields: list[str] = Field(description="What was removed from the order")
    purged_at: datetime
