"""HTTP API of deliveries: list and inspect them with their attempts; resend a failed one."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from orderguard.services.notifier.channels.base import CHANNEL_KINDS
from orderguard.services.notifier.deliveries import repository, service
from orderguard.services.notifier.settings import DeliverySettings, NotifierSettings
from orderguard.shared.http import require_scope
from orderguard.shared.http.deps import Conn, RuntimeDep, Writes
from orderguard.shared.http.inputs import Text
from orderguard.shared.uow import UnitOfWork

MAX_LIMIT = 500
Status = Literal["pending", "retrying", "delivered", "failed"]
ChannelKind = Literal["webhook", "email", "sms", "dingtalk", "wecom", "slack"]
assert set(ChannelKind.__args__) == set(CHANNEL_KINDS)  # type: ignore[attr-defined]


class DeliveryView(BaseModel):
    """A delivery as operators see it: the contact masked, never the message body."""

    id: uuid.UUID
    request_id: str
    source_event_id: str
    channel: str
    recipient_kind: str
    recipient_id: str
    contact_masked: str | None = Field(description="e.g. 138****8000; None for endpoint channels")
    template: str
    language: str
    severity: str | None
    status: str
    attempts: int
    attempt_limit: int
    next_attempt_at: datetime | None
    deferred_reason: str | None = Field(description="quiet_hours, rate_limited, retry, resend")
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None


class AttemptView(BaseModel):
    number: int
    outcome: str = Field(description="delivered, retryable or permanent")
    response_status: int | None
    response_snippet: str
    error: str | None
    started_at: datetime
    duration_s: float


class DeliveryWithAttempts(DeliveryView):
    attempt_log: list[AttemptView]


async def _policy(runtime: RuntimeDep) -> DeliverySettings:
    return runtime.settings.section(NotifierSettings).deliveries


Policy = Annotated[DeliverySettings, Depends(_policy)]
READ = [Depends(require_scope("notifications:read"))]

router = APIRouter(tags=["deliveries"])


@router.get("/deliveries", response_model=list[DeliveryView], dependencies=READ)
async def list_deliveries(
    conn: Conn,
    status: Status | None = None,
    channel: ChannelKind | None = None,
    recipient: Annotated[
        Text | None, Query(max_length=100, description="Recipient id (customer, team)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> list[dict[str, Any]]:
    """Deliveries, newest first."""
    return await repository.find_deliveries(
        conn, status=status, channel=channel, recipient=recipient, limit=limit
    )


@router.get("/deliveries/{delivery_id}", response_model=DeliveryWithAttempts, dependencies=READ)
async def get_delivery(delivery_id: uuid.UUID, conn: Conn) -> dict[str, Any]:
    """One delivery with every attempt: outcome, response status and snippet, timing."""
    found = await repository.delivery_with_attempts(conn, delivery_id)
    if found is None:
        raise service.DeliveryNotFound(str(delivery_id))
    return found


@router.post(
    "/deliveries/{delivery_id}/resend",
    response_model=DeliveryWithAttempts,
    status_code=202,
    dependencies=[Depends(require_scope("notifications:write"))],
)
async def resend(delivery_id: uuid.UUID, policy: Policy, writes: Writes) -> JSONResponse:
    """Send a failed delivery again (soon, by the delivery job) with a fresh retry budget.
    409 when it is not failed. Retry with the same Idempotency-Key."""

    async def reopen(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        found = await service.resend(uow, delivery_id, policy)
        return 202, DeliveryWithAttempts.model_validate(found).model_dump(mode="json")

    return await writes.once({}, reopen)
