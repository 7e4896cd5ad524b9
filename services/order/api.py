"""HTTP API of the order service: place, read, list, cancel, hold and release orders."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from orderguard.services.order import handlers
from orderguard.services.order.config import order_config
from orderguard.services.order.domain import (
    Actor,
    Address,
    HoldReason,
    InvalidPhone,
    Line,
    MemberLevel,
    Order,
    OrderStatus,
    mask_phone,
    normalise_mobile,
)
from orderguard.services.order.handlers import OrderConfig, OrderWithTimeline, PlaceOrder
from orderguard.shared.http import require_scope
from orderguard.shared.http.deps import Conn, Writes, require_actor
from orderguard.shared.http.inputs import IDENTIFIER, AwareInstant, NoNul, Offset, Text
from orderguard.shared.http.views import TimelineEntryView, timeline_entry_fields
from orderguard.shared.uow import UnitOfWork

OrderId = Annotated[Text, Path(min_length=1, max_length=64)]

Channel = Literal["web", "app", "mini_program", "marketplace", "pos"]


# Trimmed, non-blank text of bounded length.
AddressPart = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32), NoNul
]
# May be blank: an incomplete address is held for a person to review, not refused (intake checks).
Reviewable = Annotated[str, StringConstraints(strip_whitespace=True, max_length=32), NoNul]
Street = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), NoNul]
Recipient = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), NoNul
]
Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), NoNul
]


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


# Any short text: one that is not six digits holds the order for review (intake checks).
PostalCode = Annotated[
    Annotated[str, StringConstraints(strip_whitespace=True, max_length=16), NoNul] | None,
    BeforeValidator(_blank_is_none),
]


# Any short text: one that is not a mainland mobile number holds the order for review.
def _normalised_if_mobile(value: str) -> str:
    try:
        return normalise_mobile(value)
    except InvalidPhone:
        return value


PhoneText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=32),
    NoNul,
    AfterValidator(_normalised_if_mobile),
]


class ShippingAddressIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    province: AddressPart
    city: AddressPart
    district: Reviewable = Field(default="", description="Blank: held for review")
    street: Street = Field(default="", description="Shorter than 4 characters: held for review")
    recipient: Recipient
    postal_code: PostalCode = Field(
        default=None, description="Six digits; omit when unknown; anything else: held for review"
    )

    def to_domain(self) -> Address:
        return Address(**self.model_dump())


class OrderLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=64, pattern=IDENTIFIER)
    quantity: int = Field(gt=0, le=100_000, strict=True)
    unit_price: Decimal = Field(
        ge=0,
        max_digits=12,
        decimal_places=2,
        description="Price of one unit, at most 2 decimals (yuan)",
    )


class PlaceOrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:@-]+$")
    phone: PhoneText = Field(
        description="Mainland China mobile; +86/0086 prefix, spaces and dashes allowed;"
        " anything else holds the order for review"
    )
    shipping_address: ShippingAddressIn
    lines: list[OrderLineIn] = Field(min_length=1, max_length=200)
    channel: Channel
    warehouse: str = Field(default="main", min_length=1, max_length=64, pattern=IDENTIFIER)
    member_level: MemberLevel = Field(default="regular", description="Raises the priority")
    express: bool = Field(default=False, description="Express delivery promised; raises priority")

    def to_command(self) -> PlaceOrder:
        return PlaceOrder(
            customer_id=self.customer_id,
            phone=self.phone,
            address=self.shipping_address.to_domain(),
            lines=tuple(
                Line(sku=line.sku, quantity=line.quantity, unit_price=line.unit_price)
                for line in self.lines
            ),
            channel=self.channel,
            warehouse=self.warehouse,
            member_level=self.member_level,
            express=self.express,
        )


class HoldOrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason
    release_at: AwareInstant | None = Field(
        default=None, description="When the hold lifts by itself; omit for a person to release"
    )


class ReleaseOrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class CancelOrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class LineView(BaseModel):
    sku: str
    quantity: int
    unit_price: Decimal
    amount: Decimal


class ShippingAddressView(BaseModel):
    province: str
    city: str
    district: str
    street: str
    recipient: str
    postal_code: str | None


class PriorityView(BaseModel):
    level: str = Field(description="P1 (first) to P4")
    score: int = Field(description="0..100: member level + amount + delivery promise")


class HoldView(BaseModel):
    reason: str = Field(description="address_incomplete, phone_invalid, out_of_stock, ...")
    note: str | None
    held_from: str | None = Field(description="The status a release returns to")
    release_at: datetime | None


class OrderSummaryView(BaseModel):
    """An order in a queue: enough to pick it, without its lines and timeline."""

    order_id: str
    status: str
    priority: PriorityView
    hold: HoldView | None
    customer_id: str
    channel: str
    member_level: str
    express: bool
    total_amount: Decimal
    placed_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, order: Order) -> OrderSummaryView:
        return cls.model_validate(_summary(order))


def _summary(order: Order) -> dict[str, Any]:
    """An order summary's fields, nested views as dicts: validated in one call, not a model
    built per part (a `POST /orders` answer took 2-3x as long that way)."""
    hold = (
        {
            "reason": order.hold_reason,
            "note": order.hold_note,
            "held_from": order.held_from,
            "release_at": order.hold_release_at,
        }
        if order.hold_reason is not None
        else None
    )
    return {
        "order_id": order.order_id,
        "status": order.status,
        "priority": {"level": order.priority.level, "score": order.priority.score},
        "hold": hold,
        "customer_id": order.customer_id,
        "channel": order.channel,
        "member_level": order.member_level,
        "express": order.express,
        "total_amount": order.total_amount,
        "placed_at": order.placed_at,
        "updated_at": order.updated_at,
    }


class OrderListView(BaseModel):
    orders: list[OrderSummaryView]
    limit: int
    offset: int


class OrderView(OrderSummaryView):
    """An order as operators see it. Amounts are decimal strings; the phone is masked."""

    allowed_actions: list[str]
    warehouse: str
    phone: str = Field(description="Masked, e.g. 138****5678")
    shipping_address: ShippingAddressView
    lines: list[LineView]
    payment_id: str | None
    paid_amount: Decimal | None
    payment_due_at: datetime | None
    promised_delivery_by: datetime | None
    delivered_at: datetime | None
    timeline: list[TimelineEntryView]

    @classmethod
    def of(cls, found: OrderWithTimeline) -> OrderView:  # type: ignore[override]
        order = found.order
        return cls.model_validate(
            {
                **_summary(order),
                "allowed_actions": [str(action) for action in order.allowed_actions],
                "warehouse": order.warehouse,
                "phone": mask_phone(order.phone),
                "shipping_address": order.address.as_dict(),
                "lines": [
                    {
                        "sku": line.sku,
                        "quantity": line.quantity,
                        "unit_price": line.unit_price,
                        "amount": line.amount,
                    }
                    for line in order.lines
                ],
                "payment_id": order.payment_id,
                "paid_amount": order.paid_amount,
                "payment_due_at": order.payment_due_at,
                "promised_delivery_by": order.promised_delivery_by,
                "delivered_at": order.delivered_at,
                "timeline": [timeline_entry_fields(entry) for entry in found.timeline],
            }
        )


def _answer_with_order(changed: OrderWithTimeline, status: int = 200) -> tuple[int, dict[str, Any]]:
    return status, OrderView.of(changed).model_dump(mode="json")


def _location(body: dict[str, Any]) -> str:
    return f"/orders/{body['order_id']}"


async def config(
    request: Request,
) -> OrderConfig:  # async, and no sub-dependency (shared/http/deps)
    return order_config(request.app.state.runtime)


Config = Annotated[OrderConfig, Depends(config)]
OrderWriter = Annotated[Actor, Depends(require_actor("orders:write"))]
READ = [Depends(require_scope("orders:read"))]

router = APIRouter(tags=["orders"])


@router.post(
    "/orders",
    status_code=201,
    response_model=OrderView,
    responses={201: {"headers": {"Location": {"schema": {"type": "string"}}}}},
)
async def place_order(
    request: PlaceOrderRequest, config: Config, actor: OrderWriter, writes: Writes
) -> JSONResponse:
    """Place an order, published as order.placed.v1. Retry with the same Idempotency-Key.

    An order whose address looks incomplete or whose phone is not a mainland mobile is
    created on hold (order.held.v1) with the reason, for a person to release or cancel."""

    async def place(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        placed = await handlers.place_order(uow, config, request.to_command(), actor)
        return _answer_with_order(placed, 201)

    return await writes.once(request, place, _location)


@router.get("/orders", response_model=OrderListView, dependencies=READ)
async def list_orders(
    conn: Conn,
    status: OrderStatus | None = None,
    hold_reason: HoldReason | None = None,
    customer_id: Annotated[Text | None, Query(max_length=64)] = None,
    channel: Channel | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[Offset, Query()] = 0,
) -> OrderListView:
    """Orders filtered by status, hold reason, customer and channel, highest priority first,
    then oldest first: e.g. `?status=on_hold` is the queue of orders waiting for a person."""
    found = await handlers.list_orders(
        conn,
        status=status,
        hold_reason=hold_reason,
        customer_id=customer_id,
        channel=channel,
        limit=limit,
        offset=offset,
    )
    return OrderListView(
        orders=[OrderSummaryView.of(order) for order in found], limit=limit, offset=offset
    )


@router.get("/orders/{order_id}", response_model=OrderView, dependencies=READ)
async def get_order(order_id: OrderId, conn: Conn) -> OrderView:
    """An order with its status, priority, hold, lines, amounts and timeline (phone masked)."""
    # One statement reads the order and its timeline together: no snapshot transaction needed.
    return OrderView.of(await handlers.order_with_timeline(conn, order_id))


@router.post("/orders/{order_id}/cancel", response_model=OrderView)
async def cancel_order(
    request: CancelOrderRequest,
    order_id: OrderId,
    config: Config,
    actor: OrderWriter,
    writes: Writes,
) -> JSONResponse:
    """Cancel an order before it ships (order.cancelled.v1); 409 names the current status."""

    async def cancel(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        return _answer_with_order(
            await handlers.cancel_order(uow, config, order_id, request.reason, actor)
        )

    return await writes.once(request, cancel)


@router.post("/orders/{order_id}/hold", response_model=OrderView)
async def hold_order(
    request: HoldOrderRequest,
    order_id: OrderId,
    config: Config,
    actor: OrderWriter,
    writes: Writes,
) -> JSONResponse:
    """Hold an order with a reason, optionally until `release_at` (order.held.v1; the
    customer is told what they can do); 409 names the current status."""

    async def hold(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        return _answer_with_order(
            await handlers.hold_order(
                uow, config, order_id, request.reason, request.release_at, actor
            )
        )

    return await writes.once(request, hold)


@router.post("/orders/{order_id}/release", response_model=OrderView)
async def release_order(
    request: ReleaseOrderRequest,
    order_id: OrderId,
    config: Config,
    actor: OrderWriter,
    writes: Writes,
) -> JSONResponse:
    """Release a held order to the status it was held from (order.released.v1)."""

    async def release(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        return _answer_with_order(
            await handlers.release_order(uow, config, order_id, request.reason, actor)
        )

    return await writes.once(request, release)
