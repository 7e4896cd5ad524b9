"""Events of the work items (the notifier's queues for people), on `work_items.events` (key:
the work item's id), so other systems can follow them: opened, claimed, commented, escalated,
resolved, dismissed, reopened, reassigned. Each carries the item as it is after the change; what people
wrote (comments, reasons typed in) stays with the notifier (GET /work-items/{id})."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orderguard.shared.events.anomalies import Severity
from orderguard.shared.events.registry import event_type

WorkItemState = Literal["open", "claimed", "resolved", "dismissed"]

_ITEM: dict[str, Any] = {
    "work_item_id": "6f1c9a52-4be0-4a57-9a0e-2f7d3c1b8e44",
    "team": "warehouse",
    "group_key": 'warehouse-stock:{warehouse="main"}',
    "title": "stock.low: MUG-RED-350 at main",
    "severity": "P3",
    "tier": 1,
    "due_at": "2026-11-22T16:00:01Z",
}


def _example(**changes: Any) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [{**_ITEM, **changes}]})


class WorkItemChange(BaseModel):
    """What every work item event says: the item after the change, who, when."""

    work_item_id: str = Field(description="The work item; also the event's subject and Kafka key")
    team: str = Field(description="The team whose queue it is in")
    group_key: str = Field(description="The routed group it stands for")
    title: str
    state: WorkItemState = Field(description="Its state after the change")
    severity: Severity = Field(description="Its severity after the change (escalation raises it)")
    tier: int = Field(ge=1, description="Escalation tier, 1 at first")
    due_at: datetime | None = Field(
        description="Claim-by while open, resolve-by while claimed; None once closed"
    )
    actor: str = Field(description="Who changed it: an operator's name, or `system`")
    actor_name: str | None = Field(
        default=None, description="A person's display name at the time (`person:` actors)"
    )
    at: datetime


@event_type("work_item.opened.v1")
class WorkItemOpened(WorkItemChange):
    """A routed group of anomalies became a work item in its team's queue."""

    model_config = _example(state="open", actor="system", at="2026-11-22T08:00:01Z")


@event_type("work_item.claimed.v1")
class WorkItemClaimed(WorkItemChange):
    """Someone took the item on."""

    model_config = _example(state="claimed", actor="li.lei", at="2026-11-22T08:05:00Z")


@event_type("work_item.commented.v1")
class WorkItemCommented(WorkItemChange):
    """Someone commented on the item (the text is at GET /work-items/{id})."""

    model_config = _example(
        state="claimed",
        actor="li.lei",
        at="2026-11-22T08:06:00Z",
        comment_id="1b7e4c2d-9a8f-4e3b-b6a1-0c5d7e9f2a13",
    )

    comment_id: str


@event_type("work_item.escalated.v1")
class WorkItemEscalated(WorkItemChange):
    """The item missed its claim-by or resolve-by: next tier, one severity step up."""

    model_config = _example(
        state="open",
        severity="P2",
        tier=2,
        actor="system",
        at="2026-11-22T16:00:02Z",
        missed="claim",
        missed_due_at="2026-11-22T16:00:01Z",
    )

    missed: Literal["claim", "resolve"]
    missed_due_at: datetime


@event_type("work_item.resolved.v1")
class WorkItemResolved(WorkItemChange):
    """The item is done: resolved by someone, or by itself when every anomaly cleared."""

    model_config = _example(
        state="resolved", due_at=None, actor="li.lei", at="2026-11-22T09:00:00Z", auto=False
    )

    auto: bool = Field(description="True when it resolved itself (all its anomalies cleared)")


@event_type("work_item.dismissed.v1")
class WorkItemDismissed(WorkItemChange):
    """Someone dismissed the item, with a reason (at GET /work-items/{id})."""

    model_config = _example(
        state="dismissed", due_at=None, actor="li.lei", at="2026-11-22T09:00:00Z"
    )


@event_type("work_item.reopened.v1")
class WorkItemReopened(WorkItemChange):
    """Its group fired again soon after it was resolved: the same item is open again."""

    model_config = _example(state="open", actor="system", at="2026-11-22T09:30:00Z")


@event_type("work_item.reassigned.v1")
class WorkItemReassigned(WorkItemChange):
    """A lead of the item's team gave it to another member of that team (`actor` is the lead)."""

    model_config = _example(
        state="claimed",
        actor="person:zhang.min",
        at="2026-11-22T08:20:00Z",
        assignee="person:li.lei",
        previous_assignee="person:wang.wei",
    )

    assignee: str = Field(description="Who has the item now (`person:<login>`)")
    previous_assignee: str | None = Field(description="Who had it before; None if unclaimed")
