"""HTTP API of the router: the routing file in force (and its hot reload), the open route
groups, silences, and the anomalies kept back by silences and inhibition."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from orderguard.services.notifier import repository
from orderguard.services.notifier.config import routing_in_force
from orderguard.services.notifier.routing import Matcher
from orderguard.services.notifier.routing_in_force import RoutingInForce
from orderguard.shared.errors import Invalid, NotFound
from orderguard.shared.http import Caller, require_scope
from orderguard.shared.http.deps import Conn, RuntimeDep, WriteContext, Writes
from orderguard.shared.http.inputs import Instant, Text
from orderguard.shared.uow import UnitOfWork

MAX_LIMIT = 500
READ = [Depends(require_scope("notifications:read"))]


class RouteGroupView(BaseModel):
    group_key: str
    route: str
    queue: str
    created_at: datetime
    next_flush_at: datetime | None
    last_flush_at: datetime | None
    flushes: int
    firing: int = Field(description="Members still firing")
    pending: int = Field(description="Members added or resolved since the last flush")


class CreateSilence(BaseModel):
    """Mute anomalies whose labels match every matcher, from `starts_at` (default now) until
    `ends_at`."""

    model_config = ConfigDict(extra="forbid")

    matchers: list[Annotated[Text, StringConstraints(max_length=1000)]] = Field(
        min_length=1,
        max_length=20,
        description='Prometheus-style, e.g. rule="shipment.stalled", carrier=~"sf|dhl"',
        examples=[['rule="shipment.stalled"', 'carrier="sf"']],
    )
    comment: Text = Field(min_length=1, max_length=1000, description="Why (for the next person)")
    starts_at: Instant | None = Field(default=None, description="Default: now")
    ends_at: Instant

    @field_validator("matchers")
    @classmethod
    def _parse(cls, matchers: list[str]) -> list[str]:
        return [str(Matcher.parse(text)) for text in matchers]

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _utc(cls, moment: datetime | None) -> datetime | None:
        if moment is not None and moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment

    @model_validator(mode="after")
    def _window(self) -> CreateSilence:
        if all(Matcher.parse(text).matches({}) for text in self.matchers):
            raise ValueError(
                "these matchers also match an anomaly without labels: a silence must name"
                ' something, e.g. rule="shipment.stalled"'
            )
        if self.starts_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be later than starts_at")
        return self


class SilenceView(BaseModel):
    id: uuid.UUID
    matchers: list[str]
    author: str
    comment: str
    starts_at: datetime
    ends_at: datetime
    state: Literal["pending", "active", "expired"]
    muted: int = Field(description="Anomalies this silence kept back (ever)")
    created_at: datetime
    expired_by: str | None

    @classmethod
    def of(cls, row: dict[str, Any], now: datetime) -> SilenceView:
        if now < row["starts_at"]:
            state: Literal["pending", "active", "expired"] = "pending"
        else:
            state = "active" if now < row["ends_at"] else "expired"
        return cls(
            id=row["id"],
            matchers=list(row["matchers"]),
            author=row["author"],
            comment=row["comment"],
            starts_at=row["starts_at"],
            ends_at=row["ends_at"],
            state=state,
            muted=row["muted"],
            created_at=row["created_at"],
            expired_by=row["expired_by"],
        )


async def _routing(runtime: RuntimeDep) -> RoutingInForce:
    return routing_in_force(runtime)


Routing = Annotated[RoutingInForce, Depends(_routing)]
SilenceWriter = Annotated[Caller, Depends(require_scope("silences:write"))]

router = APIRouter(tags=["routing"])


def routing_view(routing: RoutingInForce) -> dict[str, Any]:
    tree = routing.current()
    rejection = routing.rejection
    return {
        **tree.as_json(),
        "loaded_at": routing.loaded_at.isoformat(),
        "last_reload_error": None
        if rejection is None
        else {"error": rejection.error, "at": rejection.at.isoformat()},
    }


@router.get("/routing", dependencies=READ)
async def get_routing(routing: Routing) -> dict[str, Any]:
    """The routing file in force in this process (its version, a digest of its text), and
    the error of the last rejected reload, if the file on disk is invalid."""
    return routing_view(routing)


@router.get("/routing/groups", response_model=list[RouteGroupView], dependencies=READ)
async def route_groups(
    conn: Conn, limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100
) -> list[dict[str, Any]]:
    """Open route groups: members firing, changes waiting, and when the next flush is due."""
    return await repository.find_groups(conn, limit)


@router.post("/routing/reload", dependencies=[Depends(require_scope("routing:write"))])
async def reload_routing(routing: Routing) -> JSONResponse:
    """Reload the routing file now: 200 with the tree in force, or 422 naming every problem
    (the previous file stays in force)."""
    routing.reload(force=True)
    if routing.rejection is not None:
        raise Invalid(
            routing.rejection.error,
            slug="invalid-routing-file",
            title="Routing file rejected; the previous one stays in force",
            version_in_force=routing.tree.version,
        )
    return JSONResponse(routing_view(routing))


@router.post(
    "/silences",
    status_code=201,
    response_model=SilenceView,
    responses={201: {"headers": {"Location": {"schema": {"type": "string"}}}}},
)
async def create_silence(
    request: CreateSilence, caller: SilenceWriter, writes: Writes
) -> JSONResponse:
    """Mute matching anomalies for a window. They are kept (GET /silences/{id} counts them)
    and routed when the silence ends if they still fire. Retry with the same
    Idempotency-Key."""

    async def create(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        starts_at = request.starts_at or uow.now
        if request.ends_at <= starts_at:
            raise Invalid(
                f"ends_at {request.ends_at.isoformat()} must be later than starts_at"
                f" {starts_at.isoformat()}.",
                slug="invalid-silence",
                title="Silence ends before it starts",
            )
        row = await repository.insert_silence(
            uow.conn,
            uuid.uuid4(),
            request.matchers,
            caller.name,
            request.comment,
            starts_at,
            request.ends_at,
        )
        return 201, SilenceView.of(row, uow.now).model_dump(mode="json")

    return await writes.once(request, create, lambda body: f"/silences/{body['id']}")


@router.get("/silences", response_model=list[SilenceView], dependencies=READ)
async def list_silences(
    conn: Conn,
    state: Literal["pending", "active", "expired"] | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> list[SilenceView]:
    """Silences, newest first; `state` at the time of the request."""
    now = datetime.now(UTC)
    rows = await repository.find_silences(conn, state, now, limit)
    return [SilenceView.of(row, now) for row in rows]


@router.get("/silences/{silence_id}", response_model=SilenceView, dependencies=READ)
async def get_silence(silence_id: uuid.UUID, conn: Conn) -> SilenceView:
    row = await repository.silence(conn, silence_id)
    if row is None:
        raise NotFound("silence", str(silence_id))
    return SilenceView.of(row, datetime.now(UTC))


async def _expire(silence_id: uuid.UUID, caller: Caller, writes: WriteContext) -> SilenceView:
    async with writes.unit_of_work() as uow:
        row = await repository.expire_silence(uow.conn, silence_id, uow.now, caller.name)
        await uow.commit()
    if row is None:
        raise NotFound("silence", str(silence_id))
    return SilenceView.of(row, datetime.now(UTC))


@router.post("/silences/{silence_id}/expire", response_model=SilenceView)
async def expire_silence(
    silence_id: uuid.UUID, caller: SilenceWriter, writes: Writes
) -> SilenceView:
    """End a silence now (idempotent: an expired silence stays as it was). What it still
    keeps back is routed by the notifier's worker within a job interval."""
    return await _expire(silence_id, caller, writes)


@router.delete("/silences/{silence_id}", response_model=SilenceView)
async def delete_silence(
    silence_id: uuid.UUID, caller: SilenceWriter, writes: Writes
) -> SilenceView:
    """The same as POST /silences/{id}/expire: silences are kept for the record."""
    return await _expire(silence_id, caller, writes)


@router.get("/suppressed", dependencies=READ)
async def suppressed(conn: Conn) -> dict[str, Any]:
    """Anomalies kept back, by reason: `held` (still firing and not released) and `total`."""
    return await repository.suppressed_counts(conn)
