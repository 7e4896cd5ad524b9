"""HTTP API of the recycle bin: move an order in, restore it, list and filter, count."""

from __future__ import annotations

import base64
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from orderguard.services.order.api import OrderId
from orderguard.services.order.handlers import OrderNotFound
from orderguard.services.order.recycle_bin import handlers, repository
from orderguard.services.order.recycle_bin.domain import (
    BinEntry,
    BinState,
    Category,
    Cause,
    MoveOutcome,
    manual_cause,
)
from orderguard.services.order.recycle_bin.repository import BinFilter, ListedEntry
from orderguard.shared.actor import Actor
from orderguard.shared.http import Problem, require_scope
from orderguard.shared.http.deps import Conn, RuntimeDep, Writes, require_actor
from orderguard.shared.http.inputs import Instant, NoNul, Text
from orderguard.shared.http.views import ActorView
from orderguard.shared.uow import UnitOfWork

Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), NoNul
]
Dimension = Literal["category", "reason", "channel", "week", "sku", "state", "customer_type"]


class MoveToBinRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: Category = Field(description="One of " + ", ".join(c.value for c in Category))
    reason: Reason = Field(description="Why, in words (free text)")


class RestoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason | None = None


class CauseView(BaseModel):
    category: str
    reason: str
    actor: ActorView
    at: datetime
    case_id: str | None
    event_type: str | None
    event_id: str | None

    @classmethod
    def of(cls, cause: Cause) -> CauseView:
        return cls(
            category=cause.category,
            reason=cause.reason,
            actor=ActorView.of(cause.actor),
            at=cause.at,
            case_id=cause.case_id,
            event_type=cause.event_type,
            event_id=cause.event_id,
        )


class BinEntryView(BaseModel):
    """One stay of an order in the recycle bin; `history` holds every cause, first one first."""

    entry_id: str
    order_id: str
    state: str = Field(description="in_bin, restored, archived or purged")
    category: str
    reason: str
    case_id: str | None
    moved_by: str
    moved_at: datetime
    order_status: str = Field(description="The order's status when it went in")
    channel: str
    amount: Decimal
    closed_by: str | None
    closed_reason: str | None
    restored_at: datetime | None
    archived_at: datetime | None
    purged_at: datetime | None
    history: list[CauseView]
    customer_type: str | None = None
    skus: list[str] | None = None

    @classmethod
    def of(cls, entry: BinEntry, listed: ListedEntry | None = None) -> BinEntryView:
        return cls(
            entry_id=entry.entry_id,
            order_id=entry.order_id,
            state=entry.state,
            category=entry.category,
            reason=entry.reason,
            case_id=entry.case_id,
            moved_by=entry.moved_by,
            moved_at=entry.moved_at,
            order_status=entry.order_status,
            channel=entry.channel,
            amount=entry.amount,
            closed_by=entry.closed_by,
            closed_reason=entry.closed_reason,
            restored_at=entry.restored_at,
            archived_at=entry.archived_at,
            purged_at=entry.purged_at,
            history=[CauseView.of(cause) for cause in entry.causes],
            customer_type=listed.customer_type if listed else None,
            skus=listed.skus if listed else None,
        )


class MoveResult(BinEntryView):
    outcome: str = Field(
        description="moved (a new entry), reason_added (already in the bin: the reason joined"
        " its history) or already (this cause was applied before)"
    )


class BinPage(BaseModel):
    items: list[BinEntryView]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end"
    )


class GroupView(BaseModel):
    key: dict[str, str]
    orders: int
    amount: Decimal


class BinStats(BaseModel):
    """Counts ready for a chart: one group per combination of the `group_by` values."""

    group_by: list[str]
    moved_from: datetime | None = Field(alias="from")
    moved_to: datetime | None = Field(alias="to")
    groups: list[GroupView]
    total_orders: int
    total_amount: Decimal

    model_config = ConfigDict(populate_by_name=True)


def _cursor(entry: BinEntry) -> str:
    raw = f"{entry.moved_at.isoformat()}|{entry.entry_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moved_at, entry_id = raw.split("|", 1)
        return datetime.fromisoformat(moved_at), entry_id
    except (ValueError, UnicodeDecodeError):
        raise Problem(
            400,
            "invalid-cursor",
            "Invalid cursor",
            "Pass the next_cursor of a previous page unchanged.",
        ) from None


OrderWriter = Annotated[Actor, Depends(require_actor("orders:write"))]
READ = [Depends(require_scope("orders:read"))]


async def _topic(runtime: RuntimeDep) -> str:
    return runtime.topics.orders


OrdersTopic = Annotated[str, Depends(_topic)]

router = APIRouter(tags=["recycle bin"])


@router.post(
    "/orders/{order_id}/recycle-bin",
    status_code=201,
    response_model=MoveResult,
    responses={200: {"model": MoveResult, "description": "Already in the bin"}},
)
async def move_to_recycle_bin(
    request: MoveToBinRequest,
    order_id: OrderId,
    topic: OrdersTopic,
    actor: OrderWriter,
    writes: Writes,
) -> JSONResponse:
    """Move an order to the recycle bin (order.recycled.v1): 201 with a new entry. If it is
    already there, 200: the same cause changes nothing, another one joins the entry's
    history. The order itself is not changed."""

    async def move(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        cause = manual_cause(request.category, request.reason, actor, uow.now)
        moved = await handlers.move_by_hand(uow, topic, order_id, cause)
        assert moved.entry is not None
        body = MoveResult(**BinEntryView.of(moved.entry).model_dump(), outcome=moved.outcome.value)
        return 201 if moved.outcome is MoveOutcome.MOVED else 200, body.model_dump(mode="json")

    return await writes.once(request, move)


@router.post("/orders/{order_id}/recycle-bin/restore", response_model=BinEntryView)
async def restore_from_recycle_bin(
    order_id: OrderId,
    topic: OrdersTopic,
    actor: OrderWriter,
    writes: Writes,
    request: RestoreRequest | None = None,
) -> JSONResponse:
    """Take an order out of the bin (order.restored.v1), back to the status it had; 409
    when it is not in the bin."""
    reason = request.reason if request else None

    async def restore(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        entry = await handlers.restore(uow, topic, order_id, actor, reason)
        return 200, BinEntryView.of(entry).model_dump(mode="json")

    return await writes.once({"reason": reason}, restore)


@router.get("/orders/{order_id}/recycle-bin", response_model=list[BinEntryView], dependencies=READ)
async def recycle_bin_entries_of_order(order_id: OrderId, conn: Conn) -> list[BinEntryView]:
    """Every stay of this order in the bin, newest first."""
    entries = await repository.entries_of_order(conn, order_id)
    if not entries and not await conn.fetchval(
        "SELECT true FROM orders WHERE order_id = $1", order_id
    ):
        raise OrderNotFound(order_id)
    return [BinEntryView.of(entry) for entry in entries]


async def filters(
    reason: Annotated[Text | None, Query(max_length=200, description="Contained, any case")] = None,
    category: Annotated[list[Category], Query()] = [],  # noqa: B006 (FastAPI copies defaults)
    state: Annotated[list[BinState], Query()] = [],  # noqa: B006
    moved_from: Annotated[Instant | None, Query(alias="from", description="Inclusive")] = None,
    moved_to: Annotated[Instant | None, Query(alias="to", description="Exclusive")] = None,
    customer_type: Annotated[Text | None, Query(max_length=64)] = None,
    channel: Annotated[Text | None, Query(max_length=64)] = None,
    sku: Annotated[Text | None, Query(max_length=64)] = None,
) -> BinFilter:
    for name, value in (("from", moved_from), ("to", moved_to)):
        if value is not None and value.tzinfo is None:
            raise Problem(
                400,
                "naive-time",
                "Time without a zone",
                f"`{name}` needs a time zone, e.g. 2026-11-22T00:00:00Z.",
            )
    return BinFilter(
        reason=reason,
        categories=tuple(c.value for c in category),
        states=tuple(s.value for s in state),
        moved_from=moved_from,
        moved_to=moved_to,
        customer_type=customer_type,
        channel=channel,
        sku=sku,
    )


Filter = Annotated[BinFilter, Depends(filters)]


@router.get(
    "/recycle-bin",
    response_model=BinPage,
    dependencies=READ,
    responses={400: {"description": "The cursor is not one a page returned"}},
)
async def list_recycle_bin(
    where: Filter,
    conn: Conn,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[Text | None, Query(max_length=200)] = None,
) -> BinPage:
    """Entries newest first (by time moved in, then entry id), filtered; page with `cursor`."""
    listed = await repository.list_entries(conn, where, limit + 1, _after(cursor))
    page = listed[:limit]
    return BinPage(
        items=[BinEntryView.of(item.entry, item) for item in page],
        next_cursor=_cursor(page[-1].entry) if len(listed) > limit else None,
    )


@router.get(
    "/recycle-bin/stats",
    response_model=BinStats,
    response_model_by_alias=True,
    dependencies=READ,
)
async def recycle_bin_stats(
    where: Filter,
    conn: Conn,
    group_by: Annotated[
        list[Dimension],
        Query(
            description="One or several of category, reason, channel, week (ISO), sku, state,"
            " customer_type"
        ),
    ] = ["category"],  # noqa: B006
) -> BinStats:
    """Orders that went into the bin (every state, purged ones too) counted per group, with
    their amount: the orders' totals, or with sku the amount of that SKU's lines."""
    dimensions: list[str] = list(dict.fromkeys(group_by))
    groups = await repository.counts(conn, dimensions, where)
    total = await repository.counts(conn, [], where) if groups else []
    return BinStats(
        group_by=dimensions,
        moved_from=where.moved_from,
        moved_to=where.moved_to,
        groups=[GroupView(key=g.key, orders=g.orders, amount=g.amount) for g in groups],
        total_orders=total[0].orders if total else 0,
        total_amount=total[0].amount if total else Decimal("0.00"),
    )
