"""Request bodies are bounded so that what an API accepts always fits a Kafka record."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, Request

from orderguard.cli.services_registry import OrderguardSettings
from orderguard.shared.http import create_app
from orderguard.shared.http.limits import MAX_JSON_BODY_BYTES
from orderguard.shared.kafka import MAX_RECORD_BYTES, TOPIC_MAX_MESSAGE_BYTES


async def _ready() -> dict[str, bool]:
    return {}


def _client(settings: OrderguardSettings, service: str = "aftersales") -> httpx.AsyncClient:
    router = APIRouter()

    @router.post("/things")
    async def things(body: dict[str, Any]) -> dict[str, int]:
        return {"keys": len(body)}

    @router.post("/uploads")
    async def upload(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    app = create_app(service, settings, _ready, [router])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def test_the_limits_nest() -> None:
    assert MAX_JSON_BODY_BYTES < MAX_RECORD_BYTES < TOPIC_MAX_MESSAGE_BYTES


async def test_a_json_body_over_the_limit_is_a_413_problem() -> None:
    async with _client(OrderguardSettings()) as client:
        small = await client.post("/things", json={"a": "x" * 1000})
        assert small.status_code == 200
        big = await client.post("/things", json={"a": "x" * MAX_JSON_BODY_BYTES})
        assert big.status_code == 413
        assert big.headers["content-type"] == "application/problem+json"
        problem = big.json()
        assert problem["status"] == 413 and str(MAX_JSON_BODY_BYTES) in problem["title"]
        assert problem["instance"] == "/things"


async def test_a_streamed_body_without_length_is_counted() -> None:
    async def chunks() -> Any:
        for _ in range(MAX_JSON_BODY_BYTES // 1000 + 2):
            yield b"x" * 1000

    async with _client(OrderguardSettings()) as client:
        response = await client.post(
            "/things", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"


async def test_uploads_of_other_types_may_be_as_large_as_the_attachment_limit() -> None:
    settings = OrderguardSettings(aftersales={"attachment_max_bytes": 2 * MAX_JSON_BODY_BYTES})
    async with _client(settings) as client:
        body = b"\xff" * (MAX_JSON_BODY_BYTES + 10)
        ok = await client.post("/uploads", content=body, headers={"content-type": "image/png"})
        assert ok.json() == {"bytes": len(body)}
        too_big = await client.post(
            "/uploads", content=body * 2, headers={"content-type": "image/png"}
        )
        assert too_big.status_code == 413


async def test_a_service_without_uploads_takes_other_types_only_as_large_as_json() -> None:
    settings = OrderguardSettings(aftersales={"attachment_max_bytes": 2 * MAX_JSON_BODY_BYTES})
    async with _client(settings, "order") as client:
        body = b"\xff" * (MAX_JSON_BODY_BYTES + 10)
        refused = await client.post("/uploads", content=body, headers={"content-type": "image/png"})
        assert refused.status_code == 413
