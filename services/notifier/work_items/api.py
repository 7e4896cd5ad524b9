"""HTTP API of the work items: team queues, one item in full, the actions people take, and
analytics as chart-ready JSON."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from orderguard.services.notifier.config import sla_policy
from orderguard.services.notifier.repository import Connection
from orderguard.services.notifier.work_items import analytics, domain, handlers, repository
from orderguard.services.notifier.work_items.domain import SlaPolicy, State
from orderguard.shared.actor import API_KEY, PERSON, SYSTEM, Actor
from orderguard.shared.events.anomalies import Severity, Team
from orderguard.shared.http import Caller, Problem, require_scope
from orderguard.shared.http.deps import Conn, RuntimeDep, WriteContext, Writes
from orderguard.shared.http.inputs import Instant, NoNul, Offset, Seconds, Text
from orderguard.shared.http.views import TimelineEntryView
from orderguard.shared.timeline import TimelineEntry
from orderguard.shared.uow import UnitOfWork

MAX_LIMIT = 200
READ = "work_items:read"
WRITE = "work_items:write"
ItemId = Annotated[uuid.UUID, Path(description="Work item id (a UUID)")]

Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), NoNul
]
Body = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000), NoNul
]


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason | None = Field(default=None, description="What was done (optional)")


class DismissRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason = Field(description="Why this needs no work (required)")


class ReassignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assignee: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._@-]{1,64}$")] = Field(
        description="The login of a member of the item's team"
    )


class CommentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: Body


class WorkItemView(BaseModel):
    id: uuid.UUID
    team: str
    group_key: str
    state: str
    allowed_actions: list[str]
    severity: str
    initial_severity: str
    priority: int
    tier: int
    title: str
    rules: list[str]
    labels: dict[str, str]
    anomaly_count: int
    open_anomalies: int
    created_at: datetime
    claim_due_at: datetime
    resolve_due_at: datetime
    due_at: datetime | None = Field(description="Claim-by while open, resolve-by while claimed")
    overdue: bool
    claimed_by: str | None
    claimed_at: datetime | None
    closed_at: datetime | None
    closed_by: str | None
    close_reason: str | None
    cleared_at: datetime | None = Field(
        description="Every anomaly cleared; a claimed item waits for its claimant to confirm"
    )
    reopened: int

    @classmethod
    def of(cls, row: dict[str, Any], now: datetime) -> WorkItemView:
        state = State(row["state"])
        due = row["due_at"]
        return cls(
            **{k: v for k, v in row.items() if k in cls.model_fields},
            priority=domain.priority_of(row["severity"]),
            allowed_actions=domain.allowed_actions(state),
            overdue=due is not None and due < now,
        )


class AnomalyView(BaseModel):
    fingerprint: str
    rule: str
    severity: str
    summary: str
    labels: dict[str, str]
    event_time: datetime
    detected_at: datetime
    fired: int
    cleared_at: datetime | None


class LinkView(BaseModel):
    kind: str = Field(description="order, shipment, case, product or customer")
    ref: str


class CommentView(BaseModel):
    id: uuid.UUID
    author: str
    body: str
    created_at: datetime


def _timeline_entry(row: dict[str, Any]) -> TimelineEntryView:
    """A stored line of the item's timeline: its actor is the system, a person (with the
    display name they had then) or an API key."""
    who: str = row["actor"]
    if who == domain.SYSTEM:
        actor = Actor(SYSTEM, who)
    elif who.startswith(f"{PERSON}:"):  # a person the console acted for
        actor = Actor(PERSON, who.removeprefix(f"{PERSON}:"), row.get("actor_name"))
    else:
        actor = Actor(API_KEY, who)
    return TimelineEntryView.of(
        TimelineEntry(at=row["at"], what=row["what"], actor=actor, details=row["details"] or {})
    )


class WorkItemDetail(WorkItemView):
    anomalies: list[AnomalyView]
    links: list[LinkView]
    comments: list[CommentView]
    timeline: list[TimelineEntryView]

    @classmethod
    def of(cls, row: dict[str, Any], now: datetime) -> WorkItemView:
        return super().of({**row, "timeline": [_timeline_entry(e) for e in row["timeline"]]}, now)


class WorkItemPage(BaseModel):
    items: list[WorkItemView]
    total: int
    limit: int
    offset: int
    next_offset: int | None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = _utc(end) if end else datetime.now(UTC)
    start = _utc(start) if start else end - timedelta(days=7)
    if start >= end:
        raise Problem(422, "validation", "Empty time range", "`from` must be before `to`.")
    return start, end


async def _sla_policy(runtime: RuntimeDep) -> SlaPolicy:
    return sla_policy(runtime)


Policy = Annotated[SlaPolicy, Depends(_sla_policy)]
Worker = Annotated[Caller, Depends(require_scope(WRITE))]
READ_SCOPE = [Depends(require_scope(READ))]

router = APIRouter(tags=["work items"])


async def _detail(conn: Connection, item_id: str) -> WorkItemView:
    found = await repository.detail(conn, item_id)
    if found is None:
        raise handlers.WorkItemNotFound(item_id)
    return WorkItemDetail.of(found, datetime.now(UTC))


@router.get("/work-items", response_model=WorkItemPage, dependencies=READ_SCOPE)
async def list_work_items(
    conn: Conn,
    team: Team | None = None,
    state: Annotated[list[State] | None, Query(description="Repeat for several")] = None,
    severity: Severity | None = None,
    rule: Annotated[Text | None, Query(max_length=100)] = None,
    min_age: Annotated[Seconds | None, Query(description="Seconds since opened")] = None,
    max_age: Annotated[Seconds | None, Query(description="Seconds since opened")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    offset: Annotated[Offset, Query()] = 0,
) -> dict[str, Any]:
    """A queue: by priority (P1 first), then due time (soonest first)."""
    now = datetime.now(UTC)
    where = repository.QueueFilter(
        team=team,
        states=tuple(str(s) for s in state or ()),
        severity=severity,
        rule=rule,
        created_before=now - timedelta(seconds=min_age) if min_age is not None else None,
        created_after=now - timedelta(seconds=max_age) if max_age is not None else None,
    )
    rows, total = await repository.find(conn, where, limit, offset)
    return {
        "items": [WorkItemView.of(row, now) for row in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if offset + limit < total else None,
    }


@router.get("/work-items/{item_id}", response_model=WorkItemDetail, dependencies=READ_SCOPE)
async def get_work_item(item_id: ItemId, conn: Conn) -> WorkItemView:
    """The item with its anomalies, links, comments and timeline."""
    return await _detail(conn, str(item_id))


async def _act(
    writes: WriteContext, item_id: uuid.UUID, caller: Caller, apply: handlers.Change
) -> WorkItemView:
    async with writes.unit_of_work() as uow:
        await handlers.change(
            uow, writes.runtime.topics.work_items, str(item_id), apply, caller.person_name
        )
        await uow.commit()
    async with writes.runtime.pool.acquire() as conn:
        return await _detail(conn, str(item_id))


@router.post("/work-items/{item_id}/claim", response_model=WorkItemDetail)
async def claim_work_item(
    item_id: ItemId, caller: Worker, policy: Policy, writes: Writes
) -> WorkItemView:
    """Take an open item; claiming your own claim again is a no-op."""
    return await _act(
        writes,
        item_id,
        caller,
        lambda item: domain.claim(item, caller.name, datetime.now(UTC), policy),
    )


@router.post("/work-items/{item_id}/resolve", response_model=WorkItemDetail)
async def resolve_work_item(
    item_id: ItemId,
    caller: Worker,
    policy: Policy,
    writes: Writes,
    body: ResolveRequest | None = None,
) -> WorkItemView:
    """Close the item as done; the reason says what was done."""
    reason = body.reason if body else None
    return await _act(
        writes,
        item_id,
        caller,
        lambda item: domain.resolve(item, caller.name, reason, datetime.now(UTC), policy),
    )


@router.post("/work-items/{item_id}/dismiss", response_model=WorkItemDetail)
async def dismiss_work_item(
    body: DismissRequest, item_id: ItemId, caller: Worker, policy: Policy, writes: Writes
) -> WorkItemView:
    """Close the item as needing no work; a reason is required."""
    return await _act(
        writes,
        item_id,
        caller,
        lambda item: domain.dismiss(item, caller.name, body.reason, datetime.now(UTC), policy),
    )


@router.post(
    "/work-items/{item_id}/reassign",
    response_model=WorkItemDetail,
    responses={403: {"description": "The acting person does not lead the item's team"}},
)
async def reassign_work_item(
    body: ReassignRequest, item_id: ItemId, caller: Worker, policy: Policy, writes: Writes
) -> WorkItemView:
    """Give a live item to a member of its team (claimed in their name). A person acting
    through a delegating key (X-Acting-Person) must lead the item's team; 403 otherwise."""
    async with writes.unit_of_work() as uow:
        await handlers.reassign(
            uow,
            writes.runtime.topics.work_items,
            policy,
            str(item_id),
            caller.name,
            caller.person,
            body.assignee,
            caller.person_name,
        )
        await uow.commit()
    async with writes.runtime.pool.acquire() as conn:
        return await _detail(conn, str(item_id))


@router.post("/work-items/{item_id}/comments", response_model=CommentView, status_code=201)
async def comment_on_work_item(
    body: CommentRequest, item_id: ItemId, caller: Worker, writes: Writes
) -> JSONResponse:
    async def add(uow: UnitOfWork) -> tuple[int, Any]:
        created = await handlers.comment(
            uow,
            writes.runtime.topics.work_items,
            str(item_id),
            caller.name,
            body.body,
            caller.person_name,
        )
        return 201, CommentView(**created).model_dump(mode="json")

    return await writes.once(body.model_dump(), add)


# ---- analytics ---------------------------------------------------------------------------

WindowFrom = Annotated[
    Instant | None, Query(alias="from", description="Default: `to` minus 7 days")
]
WindowTo = Annotated[Instant | None, Query(alias="to", description="Default: now")]


@router.get("/analytics/anomalies", dependencies=READ_SCOPE)
async def anomaly_analytics(
    conn: Conn,
    by: Literal[
        "rule", "team", "severity", "reason", "sku", "warehouse", "carrier", "channel"
    ] = "rule",
    bucket: analytics.Bucket = "day",
    start: WindowFrom = None,
    end: WindowTo = None,
    team: Team | None = None,
) -> dict[str, Any]:
    """Anomalies that reached a team queue (distinct fingerprints), by a label and time
    bucket: counts and hourly rates, zero-filled. Recycle-bin reasons by product are the
    order service's GET /recycle-bin/stats."""
    return await _series(conn, "anomalies", by, bucket, start, end, team)


@router.get("/analytics/work-items", dependencies=READ_SCOPE)
async def work_item_analytics(
    conn: Conn,
    by: Literal[
        "rule", "team", "severity", "state", "reason", "sku", "warehouse", "carrier", "channel"
    ] = "rule",
    bucket: analytics.Bucket = "day",
    start: WindowFrom = None,
    end: WindowTo = None,
    team: Team | None = None,
) -> dict[str, Any]:
    """Work items opened, by rule, team, opening severity, state, closing reason or a label
    of the anomaly that opened them, per time bucket."""
    return await _series(conn, "work_items", by, bucket, start, end, team)


async def _series(
    conn: Connection,
    table: Literal["anomalies", "work_items"],
    by: str,
    bucket: analytics.Bucket,
    start: datetime | None,
    end: datetime | None,
    team: str | None,
) -> dict[str, Any]:
    start, end = _window(start, end)
    if (end - start) / analytics.BUCKET_LENGTH[bucket] > analytics.MAX_BUCKETS:
        raise Problem(
            422,
            "too-many-buckets",
            "Time range too long for this bucket",
            f"At most {analytics.MAX_BUCKETS} buckets; use a larger bucket or a shorter range.",
        )
    return await analytics.series(
        conn, table=table, by=by, bucket=bucket, start=start, end=end, team=team
    )


@router.get("/analytics/response-times", dependencies=READ_SCOPE)
async def response_times(
    conn: Conn, start: WindowFrom = None, end: WindowTo = None, team: Team | None = None
) -> dict[str, Any]:
    """Time to claim and to resolve (seconds: p50, p90, average) per team and the severity
    items opened with, over items opened in the range."""
    start, end = _window(start, end)
    return await analytics.response_times(conn, start=start, end=end, team=team)
