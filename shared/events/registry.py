"""Event type -> pydantic model, and the JSON Schemas generated from them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, create_model

from orderguard.shared.envelope import Envelope

M = TypeVar("M", bound=BaseModel)


class UnknownEventType(ValueError):
    pass


class EventRegistry:
    def __init__(self) -> None:
        self._models: dict[str, type[BaseModel]] = {}
        self._types: dict[type[BaseModel], str] = {}
        self._envelopes: dict[str, type[Envelope]] = {}

    def register(self, type_name: str, model: type[BaseModel]) -> None:
        if type_name in self._models and self._models[type_name] is not model:
            raise ValueError(f"event type {type_name} registered twice")
        self._models[type_name] = model
        self._types[model] = type_name

    def model_for(self, type_name: str) -> type[BaseModel]:
        try:
            return self._models[type_name]
        except KeyError:
            raise UnknownEventType(f"unknown event type {type_name!r}") from None

    def type_of(self, model: type[BaseModel]) -> str:
        return self._types[model]

    def envelope(
        self,
        data: BaseModel,
        *,
        source: str,
        subject: str,
        traceparent: str | None,
        time: datetime | None = None,
    ) -> Envelope:
        """`data` as an event of its registered type: the one way an event is made."""
        return Envelope(
            type=self.type_of(type(data)),
            source=source,
            subject=subject,
            data=data.model_dump(mode="json"),
            traceparent=traceparent,
            **({"time": time} if time is not None else {}),
        )

    def parse(self, envelope: Envelope) -> BaseModel:
        """Validate an envelope's data against its registered model."""
        return self.model_for(envelope.type).model_validate(envelope.data)

    def envelope_model(self, type_name: str) -> type[Envelope]:
        """An Envelope of exactly `type_name` whose `data` is its model: one validation per record.

        Its `data` attribute is the typed model, not a dict (the engine's fast path). It parses
        received events only, so the id is required: a made-up id would make a copy count twice.
        """
        try:
            return self._envelopes[type_name]
        except KeyError:
            model = self.model_for(type_name)
            typed: type[Envelope] = create_model(
                f"{model.__name__}Envelope",
                __base__=Envelope,
                id=(str, Field(min_length=1)),
                # A Literal of a value known at run time: pydantic takes it, mypy cannot type it.
                type=(Literal[type_name], ...),  # type: ignore[arg-type]
                data=(model, ...),
            )
            self._envelopes[type_name] = typed
            return typed

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        return {name: model.model_json_schema() for name, model in sorted(self._models.items())}

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._models

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._models))


REGISTRY = EventRegistry()


def event_type(type_name: str) -> Callable[[type[M]], type[M]]:
    """Class decorator: register a pydantic model as the data of `type_name`."""

    def register(model: type[M]) -> type[M]:
        REGISTRY.register(type_name, model)
        model.event_type = type_name  # type: ignore[attr-defined]
        return model

    return register
