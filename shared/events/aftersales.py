"""Events the after-sales service publishes on `aftersales.events` (key: case id)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orderguard.shared.events.registry import event_type

CaseType = Literal["return", "exchange", "refund", "repair", "complaint"]

_CASE = {
    "case_id": "case_01KAQ7A0B1C2D3E4F5G6H7J8K9",
    "order_id": "ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9",
    "customer_id": "cust-1042",
}


class CaseLine(BaseModel):
    """Units of one order line a case is about."""

    sku: str
    quantity: int = Field(gt=0)


class RefundedLine(BaseModel):
    """What was refunded for one order line."""

    sku: str
    quantity: int = Field(gt=0)
    amount: Decimal = Field(ge=0, description="Refunded for this line, in yuan")


@event_type("case.opened.v1")
class CaseOpened(BaseModel):
    """A customer opened an after-sales case on an order."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_CASE,
                    "case_type": "return",
                    "channel": "web",
                    "lines": [{"sku": "MUG-RED-350", "quantity": 1}],
                    "reason": "arrived chipped",
                    "priority": "P3",
                    "opened_at": "2026-11-26T09:00:00Z",
                }
            ]
        }
    )

    case_id: str = Field(description="The case's id; also the event's subject and Kafka key")
    order_id: str
    customer_id: str
    case_type: CaseType
    channel: str | None = None
    lines: list[CaseLine] = Field(default_factory=list)
    reason: str
    priority: Literal["P1", "P2", "P3", "P4"] = "P3"
    opened_at: datetime


@event_type("case.closed.v1")
class CaseClosed(BaseModel):
    """A case was closed. The order service archives the order if it is in the recycle bin."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_CASE,
                    "case_type": "return",
                    "resolution": "refunded",
                    "closed_at": "2026-11-28T17:30:00Z",
                }
            ]
        }
    )

    case_id: str = Field(description="The case's id; also the event's subject and Kafka key")
    order_id: str
    customer_id: str
    case_type: CaseType
    resolution: str
    closed_at: datetime


@event_type("refund.issued.v1")
class RefundIssued(BaseModel):
    """Money went back to the customer for some lines. Finance books it; the order goes to the recycle bin."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_CASE,
                    "refund_id": "rf_01KAQ8C0D1E2F3G4H5J6K7M8N9",
                    "channel": "web",
                    "lines": [{"sku": "MUG-RED-350", "quantity": 1, "amount": "39.90"}],
                    "amount": "39.90",
                    "reason": "arrived chipped",
                    "issued_at": "2026-11-27T11:00:00Z",
                }
            ]
        }
    )

    case_id: str = Field(description="The case's id; also the event's subject and Kafka key")
    refund_id: str
    order_id: str
    customer_id: str
    channel: str | None = None
    lines: list[RefundedLine] = Field(min_length=1)
    amount: Decimal = Field(ge=0, description="Sum of the lines, in yuan")
    reason: str
    issued_at: datetime


@event_type("case.updated.v1")
class CaseUpdated(BaseModel):
    """Something happened on an open case: a state change or an agent's comment.

    `responded` is true when staff acted (an agent's comment or state change): the first such
    update is the case's first response, which stops its first-response SLA clock.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_CASE,
                    "case_type": "complaint",
                    "action": "collect_evidence",
                    "from_state": "intake",
                    "to_state": "evidence",
                    "actor": "staff:agent-17",
                    "responded": True,
                    "priority": "P3",
                    "note": "asked the customer for photos",
                    "updated_at": "2026-11-26T10:15:00Z",
                }
            ]
        }
    )

    case_id: str = Field(description="The case's id; also the event's subject and Kafka key")
    order_id: str
    customer_id: str
    case_type: CaseType
    action: str = Field(description="What was done: a flow action (approve, ...) or comment")
    from_state: str
    to_state: str = Field(description="Equal to from_state for a comment")
    actor: str = Field(description="Who, as kind:id (staff, policy, customer)")
    responded: bool = Field(description="True when staff acted: counts as a response to the case")
    priority: Literal["P1", "P2", "P3", "P4"] = "P3"
    note: str | None = None
    updated_at: datetime
