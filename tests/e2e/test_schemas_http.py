"""Every service serves the event schemas from the app factory, without an API key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from orderguard.cli.services_registry import definition_of
from orderguard.shared.events import REGISTRY
from orderguard.shared.runtime import build_app
from orderguard.shared.settings import SERVICES, Settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "contract" / "schemas"


async def anonymous(service: Any) -> httpx.AsyncClient:
    """A client of the running service that sends no API key."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_app(service.runtime)),
        base_url=f"http://{service.runtime.definition.name}",
    )


@pytest.mark.parametrize("name", SERVICES)
async def test_every_service_lists_and_serves_the_committed_schemas(
    settings: Settings, start_service: Any, name: str
) -> None:
    service = await start_service(definition_of(name), roles=frozenset({"api"}))
    async with await anonymous(service) as client:
        listing = await client.get("/schemas")
        assert listing.status_code == 200, listing.text
        entries = {entry["type"]: entry for entry in listing.json()["schemas"]}
        assert list(entries) == list(REGISTRY)
        assert entries["order.placed.v1"] == {
            "type": "order.placed.v1",
            "title": "OrderPlaced",
            "href": "/schemas/order.placed.v1",
            "topics": [settings.topic_prefix + "orders.events"],
        }
        assert entries["anomaly.routed.v1"]["topics"] == [settings.topic_prefix + "queues.{team}"]

        for event_type, entry in entries.items():
            schema = await client.get(entry["href"])
            assert schema.status_code == 200
            assert schema.headers["content-type"] == "application/schema+json"
            # The same bytes as the committed contract.
            assert schema.content == (DOCS / f"{event_type}.json").read_bytes()


async def test_an_unknown_type_is_a_problem_404_naming_it(start_service: Any) -> None:
    service = await start_service(definition_of("order"), roles=frozenset({"api"}))
    async with await anonymous(service) as client:
        response = await client.get("/schemas/order.exploded.v1")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/unknown-event-type")
    assert problem["event_type"] == "order.exploded.v1"
    assert "'order.exploded.v1'" in problem["detail"]


async def test_the_schema_routes_are_in_the_openapi_document(start_service: Any) -> None:
    service = await start_service(definition_of("inventory"), roles=frozenset({"api"}))
    async with await anonymous(service) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/schemas", "/schemas/{event_type}"} <= set(paths)
