"""GET /schemas and GET /schemas/{event_type}: the public contract, served by every service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from orderguard.shared.contract.catalogue import messages_of
from orderguard.shared.contract.schemas import event_schemas, render_schema
from orderguard.shared.http.inputs import Text
from orderguard.shared.http.problems import Problem
from orderguard.shared.topics import Topics

SCHEMA_MEDIA_TYPE = "application/schema+json"


def build_schema_router() -> APIRouter:
    """Public routes (no API key): publishers and consumers read the contract before they hold a key."""
    router = APIRouter(tags=["contract"])
    # The same bytes as docs/contract/schemas/<type>.json: generated once per app.
    schemas = event_schemas()
    rendered = {name: render_schema(schema) for name, schema in schemas.items()}
    titles = {name: schema.get("title", name) for name, schema in schemas.items()}

    @router.get("/schemas")
    async def list_schemas(request: Request) -> dict[str, Any]:
        """Every event type and version we know, with its topics and where its schema is."""
        topics = Topics(request.app.state.settings.topic_prefix)
        return {
            "schemas": [
                {
                    "type": name,
                    "title": titles[name],
                    "href": f"/schemas/{name}",
                    "topics": [topics.name(topic.address) for topic, _ in messages_of(name)],
                }
                for name in rendered
            ]
        }

    @router.get(
        "/schemas/{event_type}",
        response_class=Response,
        responses={
            200: {"content": {SCHEMA_MEDIA_TYPE: {}}, "description": "The JSON Schema of data"},
            404: {"description": "No such event type"},
        },
    )
    async def get_schema(event_type: Annotated[Text, Path(max_length=200)]) -> Response:
        """The JSON Schema (2020-12) of an event type's `data`, e.g. order.placed.v1."""
        if event_type not in rendered:
            raise Problem(
                404,
                "unknown-event-type",
                "Unknown event type",
                f"There is no event type {event_type!r}; GET /schemas lists them.",
                event_type=event_type,
            )
        return Response(rendered[event_type], media_type=SCHEMA_MEDIA_TYPE)

    return router
