"""Events payment services outside orderguard publish on `payments.events` (key: order id)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from orderguard.shared.events.registry import event_type

_PAYMENT = {
    "order_id": "ord_01KAQ5Z3S8X0F4T4W0Y3H2N6C9",
    "payment_id": "pay-88231",
    "amount": "137.80",
    "provider": "alipay",
}


@event_type("payment.succeeded.v1")
class PaymentSucceeded(BaseModel):
    """A payment for an order was captured. The order service marks the order paid."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{**_PAYMENT, "occurred_at": "2026-11-22T08:01:30Z"}]}
    )

    order_id: str = Field(description="The order paid for; also the Kafka key")
    payment_id: str = Field(min_length=1, description="The payment's id at the provider")
    amount: Decimal = Field(ge=0, description="What was captured, in yuan")
    provider: str = Field(description="e.g. alipay, wechat_pay, unionpay")
    occurred_at: datetime


@event_type("payment.failed.v1")
class PaymentFailed(BaseModel):
    """A payment attempt failed; the customer may retry with a new attempt."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_PAYMENT,
                    "payment_id": "pay-88230",
                    "code": "insufficient_funds",
                    "reason": "balance too low",
                    "occurred_at": "2026-11-22T08:01:10Z",
                }
            ]
        }
    )

    order_id: str = Field(description="The order paid for; also the Kafka key")
    payment_id: str = Field(min_length=1, description="The attempt's id at the provider")
    amount: Decimal = Field(ge=0, description="What the attempt tried to capture, in yuan")
    provider: str
    code: str = Field(description="The provider's failure code, e.g. insufficient_funds")
    reason: str | None = Field(default=None, description="The provider's words, when given")
    occurred_at: datetime


@event_type("payment.amount_mismatch.v1")
class PaymentAmountMismatch(BaseModel):
    """A payment was captured for a different amount than the order's total: a person checks."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_PAYMENT,
                    "amount": "13.78",
                    "expected_amount": "137.80",
                    "reason": "captured amount differs from the order total",
                    "occurred_at": "2026-11-22T08:01:30Z",
                }
            ]
        }
    )

    order_id: str = Field(description="The order paid for; also the Kafka key")
    payment_id: str = Field(min_length=1)
    amount: Decimal = Field(ge=0, description="What was captured, in yuan")
    expected_amount: Decimal | None = Field(
        default=None, description="What the payment service expected, when it knows"
    )
    provider: str
    reason: str | None = None
    occurred_at: datetime
