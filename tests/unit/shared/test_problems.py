"""The domain's error vocabulary is rendered as problem+json in one place, the same for all."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from orderguard.shared.errors import Conflict, IllegalTransition, Invalid, NotFound
from orderguard.shared.http.problems import install_problem_handlers

REFUSALS: dict[str, Exception] = {
    "not-found": NotFound("work item", "wi-1"),
    "illegal": IllegalTransition(
        "order", "ord_1", "cancelled", "cancel", [], ["placed", "paid", "on_hold"]
    ),
    "conflict": Conflict("Tracking number SF1 is in use.", slug="tracking-taken", title="In use"),
    "invalid": Invalid("Say why.", slug="reason-required", title="Reason required", field="reason"),
}


def app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/{name}")
    async def refuse(name: str) -> None:
        raise REFUSALS[name]

    return app


async def problem(name: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get(f"/{name}")
    assert response.headers["content-type"] == "application/problem+json"
    return response


async def test_not_found_names_the_thing_and_its_id() -> None:
    response = await problem("not-found")
    assert response.status_code == 404
    assert response.json() == {
        "type": "https://orderguard.dev/problems/work-item-not-found",
        "title": "Unknown work item",
        "status": 404,
        "detail": "No work item wi-1.",
        "instance": "/not-found",
        "work_item_id": "wi-1",
    }


async def test_an_illegal_transition_names_the_state_and_what_it_allows() -> None:
    response = await problem("illegal")
    assert response.status_code == 409
    body = response.json()
    assert body["type"].endswith("/illegal-transition")
    assert (body["order_id"], body["current_state"], body["allowed_actions"]) == (
        "ord_1",
        "cancelled",
        [],
    )
    assert body["detail"] == (
        "Order ord_1 is cancelled; cancel is allowed only when it is placed or paid or on_hold."
    )


async def test_conflict_and_invalid_keep_their_own_type_and_members() -> None:
    conflict, invalid = await problem("conflict"), await problem("invalid")
    assert (conflict.status_code, conflict.json()["type"]) == (
        409,
        "https://orderguard.dev/problems/tracking-taken",
    )
    assert (invalid.status_code, invalid.json()["field"]) == (422, "reason")
