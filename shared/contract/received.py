"""One validation of an event that reaches us, whichever the door: a Kafka record (the engine)
or POST /events (the HTTP ingest).

An event we accept has its publisher's id (a made-up id would make a re-sent copy count twice),
an envelope and data valid for its registered type, and a `subject` equal to the aggregate id
the topic catalogue names for that type (the Kafka key that keeps one thing's events in order).
Anything else is an `InvalidEvent` saying why, field by field: the engine dead-letters it with
that reason, the ingest answers 422.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from operator import attrgetter
from typing import Any

import orjson
from pydantic import ValidationError

from orderguard.shared.contract.catalogue import NotCatalogued, message_of
from orderguard.shared.envelope import Envelope
from orderguard.shared.events import REGISTRY

# Why an event is refused: the label of dead letters and their metric.
MALFORMED = "malformed"  # not a JSON envelope, or one without an id
UNKNOWN_TYPE = "unknown_type"
INVALID = "invalid"  # data invalid for its type, or a subject that is not its aggregate id


class InvalidEvent(ValueError):
    """Why an event was refused: a reason and pydantic-style errors (`type`, `loc`, `msg`)."""

    def __init__(self, reason: str, errors: list[dict[str, Any]]) -> None:
        self.reason = reason
        self.errors = errors
        super().__init__(
            "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
                for err in errors[:5]
            )
        )


def _errors(exc: ValidationError, *prefix: str) -> list[dict[str, Any]]:
    return [
        {"type": err["type"], "loc": (*prefix, *err["loc"]), "msg": err["msg"]}
        for err in exc.errors()
    ]


def parse_envelope(raw: bytes | dict[str, Any]) -> Envelope:
    """The envelope of a received event (its `data` still a dict); InvalidEvent(malformed) if
    it is not one, or has no id of its own."""
    if isinstance(raw, bytes | bytearray | memoryview):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent(
                MALFORMED, [{"type": "json_invalid", "loc": (), "msg": f"Invalid JSON: {exc}"}]
            ) from None
    if not isinstance(raw, dict):
        raise InvalidEvent(
            MALFORMED, [{"type": "object_type", "loc": (), "msg": "An event is a JSON object"}]
        )
    errors: list[dict[str, Any]] = []
    # The envelope would make up an id; the publisher's id is what makes a re-sent copy harmless.
    if "id" not in raw:
        errors.append({"type": "missing", "loc": ("id",), "msg": "Field required"})
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as exc:
        errors += _errors(exc)
    if errors:
        raise InvalidEvent(MALFORMED, errors)
    return envelope


def typed_event(envelope: Envelope) -> Envelope:
    """The envelope as its type's own envelope model (`data` is the typed model), its subject
    checked; InvalidEvent(unknown_type | invalid) otherwise."""
    try:
        model = REGISTRY.envelope_model(envelope.type)
    except ValueError as exc:  # UnknownEventType
        raise InvalidEvent(
            UNKNOWN_TYPE, [{"type": "unknown_type", "loc": ("type",), "msg": str(exc)}]
        ) from None
    try:
        typed = model.model_validate(envelope.model_dump())
    except ValidationError as exc:
        raise InvalidEvent(INVALID, _errors(exc)) from None
    check_subject(typed)
    return typed


def received_event(raw: bytes, event_type: str | None = None) -> Envelope:
    """Validate a received event in one pass when its type is known (a `ce_type` header): the
    hot path; otherwise, or when that pass fails, step by step to say why."""
    if event_type is not None:
        try:
            return one_pass(event_type)(raw)
        except InvalidEvent:
            raise
        except ValueError:  # ValidationError too
            pass  # explained below
    return typed_event(parse_envelope(raw))


@cache
def one_pass(event_type: str) -> Callable[[bytes], Envelope]:
    """The whole validation of a received event of `event_type` in one pydantic-core call and
    the subject check: the typed envelope, or a ValueError (UnknownEventType if no such type)
    that `received_event` explains. For a caller that validates many records of a type (the
    engine's batches): it looks this up once per type, not per record."""
    validate = REGISTRY.envelope_model(event_type).__pydantic_validator__.validate_json
    described = _subject_of(event_type)
    if described is None:
        return validate
    read = described[1]

    def validated(raw: bytes) -> Envelope:
        typed: Envelope = validate(raw)
        expected = read(typed.data)  # what check_subject checks, without its lookups
        if expected is None or typed.subject != (
            expected if type(expected) is str else str(expected)
        ):
            check_subject(typed)  # raises, saying why
        return typed

    return validated


def check_subject(envelope: Envelope) -> None:
    """InvalidEvent(invalid) unless `subject` is the aggregate id the catalogue names for the
    event's type (`data` may be its model or a dict)."""
    described = _subject_of(envelope.type)
    if described is None:
        return
    path, read = described
    data = envelope.data
    try:
        # `type(...) is dict`: an isinstance check against a model class costs more (ABCMeta).
        expected = _lookup(data, path) if type(data) is dict else read(data)
    except AttributeError:
        expected = None
    if expected is not None and envelope.subject == str(expected):
        return
    raise InvalidEvent(
        INVALID,
        [
            {
                "type": "subject_mismatch",
                "loc": ("subject",),
                "msg": (
                    f"subject must be the aggregate id, data.{path} ({expected!r}):"
                    " it is the Kafka key that keeps the events of one thing in order"
                ),
            }
        ],
    )


def _lookup(data: Any, path: str) -> Any:
    for step in path.split("."):
        data = data.get(step) if isinstance(data, dict) else None
    return data


@cache
def _subject_of(event_type: str) -> tuple[str, Callable[[Any], Any]] | None:
    """The catalogued key path of an event type and a reader of it on the typed data."""
    try:
        _, message = message_of(event_type)
    except NotCatalogued:
        return None
    return message.key, attrgetter(message.key)
