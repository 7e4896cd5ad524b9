"""Response shapes several services share: who did something, and one timeline entry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from orderguard.shared.actor import Actor
from orderguard.shared.timeline import TimelineEntry


class ActorView(BaseModel):
    kind: str = Field(description="api (an API key), person, rule, consumer or system")
    id: str = Field(description="The API scope and key digest, user id, rule or consumer group")
    name: str = Field(description="What to show a person: a display name, else the id")

    @classmethod
    def of(cls, actor: Actor) -> ActorView:
        return cls.model_validate(actor_fields(actor))


def actor_fields(actor: Actor) -> dict[str, Any]:
    """An `ActorView`'s fields, for a view that validates its whole tree at once."""
    return {"kind": actor.kind, "id": actor.id, "name": actor.display_name}


class TimelineEntryView(BaseModel):
    """One thing that happened to an order, a case or a work item."""

    at: datetime
    what: str
    actor: ActorView
    note: str | None = Field(description="In the actor's words: the reason, the comment")
    from_state: str | None = Field(description="The state (or status) before, if it moved")
    to_state: str | None
    event_type: str | None = Field(description="The event that told of it, if one did")
    event_id: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, entry: TimelineEntry) -> TimelineEntryView:
        return cls.model_validate(timeline_entry_fields(entry))


def timeline_entry_fields(entry: TimelineEntry) -> dict[str, Any]:
    """A `TimelineEntryView`'s fields: a view holding entries validates its whole tree in one
    call (a model built per entry costs several times more)."""
    return {
        "at": entry.at,
        "what": entry.what,
        "actor": actor_fields(entry.actor),
        "note": entry.note,
        "from_state": None if entry.from_state is None else str(entry.from_state),
        "to_state": None if entry.to_state is None else str(entry.to_state),
        "event_type": entry.event_type,
        "event_id": entry.event_id,
        "details": dict(entry.details),
    }
