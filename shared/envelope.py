"""The CloudEvents 1.0 envelope (structured JSON mode) every message travels in."""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orderguard.shared.tracing import current_traceparent

CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"


# Event ids come from a generator of our own, seeded from os.urandom and reseeded in a forked
# child: not the random module's, which a library may seed (Hypothesis does, per example), and
# a repeated id would be dropped as a duplicate by every consumer.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def new_event_id() -> str:
    """A version 7 UUID (RFC 9562): Unix time in milliseconds, then 74 random bits.

    Ids must be unique, not secret. Time-ordered, each consumer's record of the ids it applied
    (`applied_events`, one index entry per event and group) takes new ids at the end of its
    index, where random (version 4) ids land on a random page each: 40-60 % less of
    PostgreSQL's CPU per recorded id (docs/performance.md, session 16). `uuid.uuid4()` would
    also read os.urandom (a system call) for every event."""
    value = (time.time_ns() // 1_000_000) << 80 | (_ids.getrandbits(80) & _RANDOM) | _VERSION_7
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


# Below the 48 bits of time: the version (7) and variant (RFC 9562) bits, the rest random.
_RANDOM = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 80) - 1)
_VERSION_7 = (0x7000 << 64) | (0x8000 << 48)


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
        # Straight to JSON in pydantic-core: a third of the cost of model_dump + orjson, same bytes.
        return self.__pydantic_serializer__.to_json(self, exclude_none=True)

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
