"""Requests to notify people, on `notifications.requests` (key: the recipient's id).

Any service asks the notifier to tell someone something by publishing a request that names
a template and its parameters; the notifier picks channels, language, quiet hours, dedup and
rate limits. Keying by recipient keeps one person's messages in order on one partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orderguard.shared.events.registry import event_type

# The customer-facing moments, each a template (per language) in the notifier. A request
# for a template the notifier does not have is a permanent failure (dead-lettered).
CUSTOMER_TEMPLATES = (
    "order.confirmed",  # params: order_id, total_amount
    "order.held",  # params: order_id, reason, what_you_can_do
    "order.out_of_stock",  # params: order_id, skus (comma-separated), what_you_can_do
    "order.shipped",  # params: order_id, carrier, tracking_number
    "shipment.delayed",  # params: order_id, carrier, reason, compensation (may be empty)
    "refund.issued",  # params: order_id, amount
    "case.updated",  # params: case_id, order_id, case_type, status
)


class Recipient(BaseModel):
    """Who to notify and how to reach them. Contact details are personal data: never logged."""

    kind: Literal["customer", "team", "person"]
    id: str = Field(description="customer id, team name or person id; also the Kafka key")
    email: str | None = None
    phone: str | None = Field(default=None, description="Mobile number for SMS, 11 digits")
    language: str | None = Field(
        default=None, description="BCP 47 tag, e.g. zh-CN or en; None means the default"
    )


@event_type("notification.requested.v1")
class NotificationRequested(BaseModel):
    """Please tell `recipient` about something, using `template` filled with `params`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "order.held:ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9:1",
                    "recipient": {
                        "kind": "customer",
                        "id": "cust-1042",
                        "phone": "13800138000",
                        "language": "zh-CN",
                    },
                    "template": "order.held",
                    "params": {
                        "order_id": "ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9",
                        "reason": "address_incomplete",
                        "what_you_can_do": "confirm your address",
                    },
                    "channels": None,
                    "requested_at": "2026-11-22T08:00:02Z",
                }
            ]
        }
    )

    request_id: str = Field(
        description="Deterministic per moment (e.g. template:order:seq): the notifier sends once per id"
    )
    recipient: Recipient
    template: str = Field(description="What to say, e.g. order.held (see CUSTOMER_TEMPLATES)")
    params: dict[str, str] = Field(default_factory=dict)
    channels: list[str] | None = Field(
        default=None, description="Channels to use (sms, email, webhook, ...); None: the defaults"
    )
    requested_at: datetime


@dataclass(frozen=True, slots=True)
class CustomerNotice:
    """What a service's domain says the customer is told: a template of `CUSTOMER_TEMPLATES`,
    its parameters, and a request id deterministic per moment (the same moment told again is
    one message). `UnitOfWork.notify_customer` sends it as a NotificationRequested."""

    template: str
    request_id: str
    params: dict[str, str]


# The team-facing moments (recipient kind "team", id the team name), from the work items.
TEAM_TEMPLATES = (
    "work_item.escalated",  # params: work_item_id, team, tier, severity, missed, title, due_at
    "work_item.reminder",  # params: work_item_id, team, tier, severity, title, claim_due_at
)


class RecipientRef(BaseModel):
    """Who a message was for, without contact details."""

    kind: Literal["customer", "team", "person"]
    id: str


@event_type("notification.failed.v1")
class NotificationFailed(BaseModel):
    """A message the notifier gave up on: a permanent failure or retries exhausted. On
    `notifications.dead` (key: recipient id) for people and tools to act on."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "order.held:ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9:1",
                    "delivery_id": "2f6c1c8e-7d0b-5a3e-9c41-0d7e2b5f8a13",
                    "recipient": {"kind": "customer", "id": "cust-1042"},
                    "template": "order.held",
                    "channel": "sms",
                    "reason": "permanent",
                    "error": "HTTP 400",
                    "attempts": 1,
                    "failed_at": "2026-11-22T08:00:05Z",
                }
            ]
        }
    )

    request_id: str
    delivery_id: str | None = Field(
        default=None, description="None when no delivery could even be planned"
    )
    recipient: RecipientRef
    template: str
    channel: str | None = Field(default=None, description="None when no channel could be used")
    reason: Literal["permanent", "retries_exhausted", "unrenderable", "no_channel"] = Field(
        description="permanent: the channel refused for good; retries_exhausted: every try"
        " failed; unrenderable: unknown template or missing param; no_channel: nowhere to send"
    )
    error: str = Field(description="What went wrong, without contact details")
    attempts: int = 0
    failed_at: datetime
