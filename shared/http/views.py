"""Response shapes several services share: who did something, and one timeline entry."""

from __future__ import annotations

from pydantic import BaseModel, Field

from orderguard.shared.actor import Actor


class ActorView(BaseModel):
    kind: str = Field(description="api (an API key), person, rule, consumer or system")
    id: str = Field(description="The API scope and key digest, user id, rule or consumer group")
    name: str = Field(description="What to show a person: a display name, else the id")

    @classmethod
    def of(cls, actor: Actor) -> ActorView:
        return cls(kind=actor.kind, id=actor.id, name=actor.display_name)
