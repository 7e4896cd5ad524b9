"""The request body limit: a JSON body that fits becomes an event that fits a Kafka record.

A JSON body (or one without a type) above MAX_JSON_BODY_BYTES is refused with 413 before it is
read whole; other media types (evidence uploads) may be as large as the attachment limit, which
their route checks precisely. Counted as it streams in, so a missing or false Content-Length
does not get a larger body through.
"""

from __future__ import annotations

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
