"""HTTP API of the order service: place, read and cancel orders."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
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
from orderguard.services.order.domain import (
    TRANSITIONS,
    Actor,
    Address,
    IllegalTransition,
    Line,
    TimelineEntry,
    allowed_actions,
    mask_phone,
    normalise_mobile,
)
from orderguard.services.order.handlers import OrderNotFound, OrderWithTimeline, PlaceOrder
from orderguard.shared.http import Caller, Problem, require_scope
from orderguard.shared.http.idempotency import IdempotencyKey, run_once_per_key
from orderguard.shared.runtime import Runtime
from orderguard.shared.uow import UnitOfWork

ORDER_ID = Path(min_length=1, max_length=64)
IDENTIFIER = r"^[A-Za-z0-9._-]+$"  # the same shape inventory accepts for SKUs and warehouses

Channel = Literal["web", "app", "mini_program", "marketplace", "pos"]


# Trimmed, non-blank text of bounded length.
AddressPart = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
Street = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Recipient = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


PostalCode = Annotated[
    Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{6}$")] | None,
    BeforeValidator(_blank_is_none),
]
# InvalidPhone is a ValueError, so pydantic reports it on the phone field.
MobilePhone = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=32), AfterValidator(normalise_mobile)
]


class ShippingAddressIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    province: AddressPart
    city: AddressPart
    district: AddressPart
    street: Street
    recipient: Recipient
    postal_code: PostalCode = Field(default=None, description="Six digits; omit when unknown")

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
    phone: MobilePhone = Field(
        description="Mainland China mobile; +86/0086 prefix, spaces and dashes allowed"
    )
    shipping_address: ShippingAddressIn
    lines: list[OrderLineIn] = Field(min_length=1, max_length=200)
    channel: Channel
    warehouse: str = Field(default="main", min_length=1, max_length=64, pattern=IDENTIFIER)

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
        )


class CancelOrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class LineView(BaseModel):
    sku: str
    quantity: int
    unit_price: Decimal
    amount: Decimal


class ActorView(BaseModel):
    kind: str = Field(description="api, consumer, rule or operator")
    id: str = Field(description="The API scope, consumer group or rule name")


class TimelineEntryView(BaseModel):
    at: datetime
    what: str
    actor: ActorView
    reason: str | None
    from_status: str | None
    to_status: str | None
    event_type: str | None
    event_id: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, entry: TimelineEntry) -> TimelineEntryView:
        return cls(
            at=entry.at,
            what=entry.what,
            actor=ActorView(kind=entry.actor.kind, id=entry.actor.id),
            reason=entry.reason,
            from_status=entry.from_status,
            to_status=entry.to_status,
            event_type=entry.event_type,
            event_id=entry.event_id,
            details=dict(entry.details),
        )


class ShippingAddressView(BaseModel):
    province: str
    city: str
    district: str
    street: str
    recipient: str
    postal_code: str | None


class OrderView(BaseModel):
    """An order as operators see it. Amounts are decimal strings; the phone is masked."""

    order_id: str
    status: str
    allowed_actions: list[str]
    customer_id: str
    channel: str
    warehouse: str
    phone: str = Field(description="Masked, e.g. 138****5678")
    shipping_address: ShippingAddressView
    lines: list[LineView]
    total_amount: Decimal
    placed_at: datetime
    updated_at: datetime
    timeline: list[TimelineEntryView]

    @classmethod
    def of(cls, found: OrderWithTimeline) -> OrderView:
        order = found.order
        return cls(
            order_id=order.order_id,
            status=order.status,
            allowed_actions=[str(action) for action in allowed_actions(order.status)],
            customer_id=order.customer_id,
            channel=order.channel,
            warehouse=order.warehouse,
            phone=mask_phone(order.phone),
            shipping_address=ShippingAddressView(**asdict(order.address)),
            lines=[
                LineView(
                    sku=line.sku,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    amount=line.amount,
                )
                for line in order.lines
            ],
            total_amount=order.total_amount,
            placed_at=order.placed_at,
            updated_at=order.updated_at,
            timeline=[TimelineEntryView.of(entry) for entry in found.timeline],
        )


def _not_found(order_id: str) -> Problem:
    return Problem(
        404, "order-not-found", "Unknown order", f"No order {order_id}.", order_id=order_id
    )


def _illegal(exc: IllegalTransition) -> Problem:
    allowed_from = sorted(
        status for status, actions in TRANSITIONS.items() if exc.action in actions
    )
    return Problem(
        409,
        "illegal-transition",
        f"Order cannot {exc.action} now",
        f"Order {exc.order_id} is {exc.current}; {exc.action} is allowed only when it is"
        f" {' or '.join(allowed_from)}.",
        order_id=exc.order_id,
        current_status=str(exc.current),
        allowed_actions=[str(action) for action in allowed_actions(exc.current)],
    )


def _answer(status: int, body: dict[str, Any], replayed: bool) -> JSONResponse:
    headers = {"Location": f"/orders/{body['order_id']}"} if status == 201 else {}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code=status, headers=headers)


def build_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["orders"])
    topic = runtime.topics.orders

    @router.post(
        "/orders",
        status_code=201,
        response_model=OrderView,
        responses={201: {"headers": {"Location": {"schema": {"type": "string"}}}}},
    )
    async def place_order(
        request: PlaceOrderRequest,
        caller: Caller = Depends(require_scope("orders:write")),
        idempotency_key: str | None = IdempotencyKey,
    ) -> JSONResponse:
        """Place an order, published as order.placed.v1. Retry with the same Idempotency-Key."""

        async def place(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            placed = await handlers.place_order(
                uow, topic, request.to_command(), Actor("api", caller.name)
            )
            return 201, OrderView.of(placed).model_dump(mode="json")

        return _answer(
            *await run_once_per_key(
                runtime.pool,
                runtime.schema,
                idempotency_key,
                "POST /orders",
                request.model_dump(mode="json"),
                place,
            )
        )

    @router.get(
        "/orders/{order_id}",
        response_model=OrderView,
        dependencies=[Depends(require_scope("orders:read"))],
    )
    async def get_order(order_id: str = ORDER_ID) -> OrderView:
        """An order with its status, lines, amounts and timeline (the phone masked)."""
        async with (
            runtime.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            try:
                found = await handlers.order_with_timeline(conn, order_id)
            except OrderNotFound:
                raise _not_found(order_id) from None
        return OrderView.of(found)

    @router.post("/orders/{order_id}/cancel", response_model=OrderView)
    async def cancel_order(
        request: CancelOrderRequest,
        order_id: str = ORDER_ID,
        caller: Caller = Depends(require_scope("orders:write")),
        idempotency_key: str | None = IdempotencyKey,
    ) -> JSONResponse:
        """Cancel a placed order (published as order.cancelled.v1); 409 names the current status."""

        async def cancel(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            try:
                cancelled = await handlers.cancel_order(
                    uow, topic, order_id, request.reason, Actor("api", caller.name)
                )
            except OrderNotFound:
                raise _not_found(order_id) from None
            except IllegalTransition as exc:
                raise _illegal(exc) from None
            return 200, OrderView.of(cancelled).model_dump(mode="json")

        route = f"POST /orders/{order_id}/cancel"
        return _answer(
            *await run_once_per_key(
                runtime.pool,
                runtime.schema,
                idempotency_key,
                route,
                request.model_dump(mode="json"),
                cancel,
            )
        )

    return router
