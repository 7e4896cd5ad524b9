"""HTTP API of the notifier: the notifications recorded (routing: `routing_api.py`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from orderguard.services.notifier import repository
from orderguard.shared.errors import NotFound
from orderguard.shared.events.anomalies import Team
from orderguard.shared.http import require_scope
from orderguard.shared.http.deps import Conn
from orderguard.shared.http.inputs import Instant, Text

MAX_LIMIT = 500


class NotificationView(BaseModel):
    id: uuid.UUID
    channel: str
    queue: str
    route: str
    rule: str
    fingerprint: str
    severity: str
    summary: str
    labels: dict[str, str]
    status: str
    created_at: datetime


router = APIRouter(tags=["notifier"], dependencies=[Depends(require_scope("notifications:read"))])


@router.get("/notifications", response_model=list[NotificationView])
async def list_notifications(
    conn: Conn,
    queue: Team | None = None,
    rule: Annotated[Text | None, Query(max_length=100)] = None,
    fingerprint: Annotated[Text | None, Query(max_length=100)] = None,
    since: Annotated[
        Instant | None,
        Query(description="Only notifications created at or after this time (UTC when no offset)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> list[dict[str, Any]]:
    """Notifications recorded, newest first."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return await repository.find_notifications(
        conn, queue=queue, rule=rule, fingerprint=fingerprint, since=since, limit=limit
    )


@router.get("/notifications/{notification_id}", response_model=NotificationView)
async def get_notification(notification_id: uuid.UUID, conn: Conn) -> dict[str, Any]:
    found = await repository.notification(conn, notification_id)
    if found is None:
        raise NotFound("notification", str(notification_id))
    return found
