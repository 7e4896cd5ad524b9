"""Under overload, requests wait their turn at the door instead of all being worked on at once."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import APIRouter

from orderguard.cli.services_registry import OrderguardSettings
from orderguard.shared.http import create_app


async def _ready() -> dict[str, bool]:
    return {"database": True}


class Inside:
    """How many requests were in the route at each entry; waitable."""

    def __init__(self) -> None:
        self.counts: list[int] = []
        self.entered = asyncio.Condition()

    async def reach(self, entries: int, timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s), self.entered:
            await self.entered.wait_for(lambda: len(self.counts) >= entries)


def _app(max_in_flight: int, release: asyncio.Event, inside: Inside) -> httpx.AsyncClient:
    router = APIRouter()
    now_inside = 0

    @router.post("/work")
    async def work(body: dict[str, int]) -> dict[str, int]:
        nonlocal now_inside
        now_inside += 1
        async with inside.entered:
            inside.counts.append(now_inside)
            inside.entered.notify_all()
        await release.wait()
        now_inside -= 1
        return body

    app = create_app(
        "order", OrderguardSettings(http_max_in_flight=max_in_flight), _ready, [router]
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_requests_over_the_limit_wait_and_are_all_answered_in_turn() -> None:
    release = asyncio.Event()
    inside = Inside()
    async with _app(2, release, inside) as client:
        requests = [asyncio.create_task(client.post("/work", json={"n": n})) for n in range(5)]
        await inside.reach(2)
        # Two are being worked on; the other three wait at the door, not in the route.
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(inside.counts) == 2
        # The probes and /metrics do not queue behind the API.
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/healthz")).status_code == 200
        release.set()
        answers = await asyncio.gather(*requests)
    assert [a.json() for a in answers] == [{"n": n} for n in range(5)]
    assert len(inside.counts) == 5 and max(inside.counts) == 2


async def test_zero_means_no_limit() -> None:
    release = asyncio.Event()
    inside = Inside()
    async with _app(0, release, inside) as client:
        requests = [asyncio.create_task(client.post("/work", json={"n": n})) for n in range(5)]
        await inside.reach(5)
        release.set()
        await asyncio.gather(*requests)
    assert max(inside.counts) == 5
