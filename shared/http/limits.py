"""Request limits: how large a body may be, and how many requests are handled at once.

A JSON body that fits becomes an event that fits a Kafka record.

A JSON body (or one without a type) above MAX_JSON_BODY_BYTES is refused with 413 before it is
read whole; other media types (evidence uploads) may be as large as the attachment limit, which
their route checks precisely. Counted as it streams in, so a missing or false Content-Length
does not get a larger body through.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderguard.shared.http.problems import PROBLEM_BASE, PROBLEM_JSON
from orderguard.shared.kafka import MAX_RECORD_BYTES

# Three quarters of a record: the envelope, the fields the service adds and the headers need
# the rest. Routes may be stricter (POST /events: MAX_EVENT_BYTES, with its own problem).
MAX_JSON_BODY_BYTES = MAX_RECORD_BYTES * 3 // 4


TITLE = "Request body too large"


class BodyTooLarge(StarletteHTTPException):
    """An HTTPException, so that FastAPI's body parsing lets it through to the problem handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"{TITLE} (over {limit} bytes)")


class BodyLimit:
    def __init__(self, app: ASGIApp, other_types_max_bytes: int) -> None:
        self.app = app
        self.other_types_max_bytes = other_types_max_bytes

    def _limit(self, scope: Scope) -> int:
        content_type = ""
        for name, value in scope.get("headers", ()):
            if name == b"content-type":
                content_type = value.decode("latin-1").split(";")[0].strip().lower()
        is_json = not content_type or content_type.endswith(("/json", "+json"))
        return (
            MAX_JSON_BODY_BYTES if is_json else max(MAX_JSON_BODY_BYTES, self.other_types_max_bytes)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _refuse(scope, send, limit)
                return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted_receive, send)


async def _refuse(scope: Scope, send: Send, limit: int) -> None:
    # The same problem the app's handler renders for BodyTooLarge raised while streaming.
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + "http-413",
        "title": f"{TITLE} (over {limit} bytes)",
        "status": 413,
        "instance": scope.get("path", ""),
    }
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class AdmissionGate:
    """At most `max_in_flight` requests inside the app at once; the others wait here, in
    arrival order, before their body is parsed.

    Under overload a request waiting for a pooled connection would otherwise hold its parsed
    body, model and dependencies: hundreds of them raised the order process's memory by
    ~50 MB for good (freed, but not given back by the allocator). The wait is the same
    either way. The probes and /metrics (`ungated`) never queue behind the API."""

    def __init__(self, app: ASGIApp, max_in_flight: int, ungated: frozenset[str]) -> None:
        self.app = app
        self.ungated = ungated
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._slots is None or scope["type"] != "http" or scope["path"] in self.ungated:
            await self.app(scope, receive, send)
            return
        async with self._slots:
            await self.app(scope, receive, send)
