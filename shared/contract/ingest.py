"""POST /events: one CloudEvent over HTTP, for publishers that cannot speak Kafka (carriers, payments).

A service mounts `build_ingest_router(runtime, [SomeEvent, ...])` for the event types it
accepts; each goes to the one topic the catalogue lists it on. The event is validated (the
envelope, then `data` against its model, then `subject` against the key the catalogue names)
and written to the outbox in one transaction with its id, so the same event id is published
once however often it is retried; the same id with a different body is a conflict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from orderguard.shared.contract.catalogue import Message, message_of
from orderguard.shared.contract.received import InvalidEvent, check_subject, parse_envelope
from orderguard.shared.envelope import CONTENT_TYPE, Envelope
from orderguard.shared.events import REGISTRY
from orderguard.shared.http import Caller, Problem, require_scope
from orderguard.shared.http.idempotency import run_once_per_key
from orderguard.shared.logging import get_logger
from orderguard.shared.runtime import Runtime
from orderguard.shared.uow import UnitOfWork

log = get_logger(__name__)

WRITE_SCOPE = "events:write"
ROUTE = "POST /events"
# Kafka refuses records over ~1 MB by default; an event the relay could never send would
# stall the outbox behind it, so it is refused here.
MAX_EVENT_BYTES = 512 * 1024
MAX_EVENT_ID_LENGTH = 200
ACCEPTED_MEDIA_TYPES = frozenset({"application/cloudevents+json", "application/json"})


def _invalid(*errors: dict[str, Any]) -> RequestValidationError:
    """Field-level errors, rendered like every other invalid request (problem+json, 422)."""
    return RequestValidationError(list(errors))


def _located(exc: ValidationError, *prefix: str) -> RequestValidationError:
    return _invalid(
        *(
            {"type": err["type"], "loc": (*prefix, *err["loc"]), "msg": err["msg"]}
            for err in exc.errors()
        )
    )


async def _read_body(request: Request) -> bytes:
    media_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if media_type.lower() not in ACCEPTED_MEDIA_TYPES:
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"Send one event as {CONTENT_TYPE} (CloudEvents structured mode), not {media_type}.",
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_EVENT_BYTES:
            raise Problem(
                413,
                "event-too-large",
                "Event too large",
                f"An event may be at most {MAX_EVENT_BYTES} bytes.",
            )
    return bytes(body)


def _parse(body: bytes) -> dict[str, Any]:
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _invalid(
            {"type": "json_invalid", "loc": ("body",), "msg": f"Invalid JSON: {exc}"}
        ) from None
    if not isinstance(raw, dict):
        raise _invalid(
            {"type": "object_type", "loc": ("body",), "msg": "An event is a JSON object"}
        )
    return raw


def _in_body(errors: list[dict[str, Any]]) -> RequestValidationError:
    return _invalid(*({**err, "loc": ("body", *err["loc"])} for err in errors))


def _envelope(raw: dict[str, Any]) -> Envelope:
    """The envelope, validated as on every door (`received.parse_envelope`: an id of its own)."""
    try:
        envelope = parse_envelope(raw)
    except InvalidEvent as exc:
        raise _in_body(exc.errors) from None
    if len(envelope.id) > MAX_EVENT_ID_LENGTH:
        raise _invalid(
            {
                "type": "string_too_long",
                "loc": ("body", "id"),
                "msg": f"String should have at most {MAX_EVENT_ID_LENGTH} characters",
            }
        )
    return envelope


def _data(model: type[BaseModel], envelope: Envelope) -> BaseModel:
    try:
        return model.model_validate(envelope.data)
    except ValidationError as exc:
        raise _located(exc, "body", "data") from None


def _check_subject(envelope: Envelope) -> None:
    try:
        check_subject(envelope)  # the same check the engine makes of a Kafka record
    except InvalidEvent as exc:
        raise _in_body(exc.errors) from None


def build_ingest_router(runtime: Runtime, accepts: Sequence[type[BaseModel]]) -> APIRouter:
    """POST /events for the given event models, each published to its catalogued topic."""
    accepted: dict[str, tuple[str, Message]] = {}
    for model in accepts:
        event_type = REGISTRY.type_of(model)
        topic, message = message_of(event_type)
        if topic.parameters:
            raise ValueError(f"{event_type} goes to a family of topics ({topic.address})")
        accepted[event_type] = (runtime.topics.name(topic.address), message)
    router = APIRouter(tags=["events"])

    @router.post(
        "/events",
        status_code=202,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/cloudevents+json": {
                        "schema": Envelope.model_json_schema(ref_template="#/$defs/{model}")
                    }
                },
            }
        },
        responses={
            202: {"description": "Accepted: written to the outbox, published shortly"},
            409: {"description": "This event id was accepted before with a different body"},
            413: {"description": "Event too large"},
            415: {"description": "Not a CloudEvents structured-mode JSON body"},
            422: {"description": "Invalid envelope or data, or an event type not accepted here"},
        },
    )
    async def ingest_event(
        request: Request, caller: Caller = Depends(require_scope(WRITE_SCOPE))
    ) -> JSONResponse:
        """Publish one event (CloudEvents 1.0, structured mode). Retrying with the same id is safe."""
        raw = _parse(await _read_body(request))
        envelope = _envelope(raw)
        if envelope.type not in accepted:
            known = envelope.type in set(REGISTRY)
            raise Problem(
                422,
                "event-type-not-accepted" if known else "unknown-event-type",
                "Event type not accepted here" if known else "Unknown event type",
                f"{envelope.type!r} is "
                + ("not accepted by this endpoint" if known else "not an event type we know")
                + f"; it accepts {', '.join(sorted(accepted))}.",
                event_type=envelope.type,
                accepted=sorted(accepted),
            )
        topic, message = accepted[envelope.type]
        data = _data(message.model, envelope)
        _check_subject(envelope)
        # Published as our own producers publish: data as the model serialises it.
        event = envelope.model_copy(update={"data": data.model_dump(mode="json")})
        answer = {
            "id": event.id,
            "type": event.type,
            "subject": event.subject,
            "topic": topic,
            "status": "accepted",
        }

        async def publish(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            uow.forward(topic, event)
            return 202, answer

        try:
            status, body, replayed = await run_once_per_key(
                runtime.pool, runtime.schema, event.id, ROUTE, raw, publish
            )
        except Problem as exc:
            if exc.slug != "idempotency-key-reused":
                raise
            raise Problem(
                409,
                "event-id-conflict",
                "Event id already used",
                f"Event {event.id!r} was accepted before with a different body;"
                " a different event needs a new id.",
                event_id=event.id,
            ) from None
        log.info(
            "event ingested",
            event_type=event.type,
            event_id=event.id,
            caller=caller.name,
            replayed=replayed,
        )
        return JSONResponse(
            body, status_code=status, headers={"Idempotent-Replayed": "true"} if replayed else {}
        )

    return router
