"""The CloudEvents 1.0 envelope (structured JSON mode) every message travels in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from orderguard.shared.tracing import current_traceparent

CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"


def new_event_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """One event. `subject` is the aggregate id and, by convention, the Kafka key."""

    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=new_event_id, min_length=1)
    type: str = Field(min_length=1, description="Versioned event type, e.g. order.placed.v1")
    source: str = Field(
        min_length=1, description="URI reference of the producer, e.g. /orderguard/order"
    )
    subject: str = Field(min_length=1)
    time: datetime = Field(default_factory=utcnow)
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]
    # W3C trace context, carried as the CloudEvents distributed-tracing extension; an event
    # created while handling a request or another event joins that trace.
    traceparent: str | None = Field(default_factory=current_traceparent)

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        """Headers that let consumers route and skip without parsing the body."""
        headers = [
            ("content-type", CONTENT_TYPE.encode()),
            ("ce_type", self.type.encode()),
            ("ce_id", self.id.encode()),
        ]
        if self.traceparent:
            headers.append(("traceparent", self.traceparent.encode()))
        return headers

    @classmethod
    def from_json(cls, raw: bytes) -> Envelope:
        return cls.model_validate_json(raw)
