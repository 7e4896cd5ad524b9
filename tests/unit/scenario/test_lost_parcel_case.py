"""A parcel the carrier declares lost makes aftersales open a refund case nobody in the
scenario answers: the player labels its SLA breach, due at the case's own opening plus the
scaled first-response SLA (it was counted a false alarm before)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import httpx

from orderguard.scenario.player import Clients, Played, Player
from orderguard.scenario.scale import FIRST_RESPONSE_S, Scale

OPENED = datetime(2026, 12, 3, 10, 0, 5, tzinfo=UTC)
SENT = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)


def test_a_lost_parcel_labels_the_breach_of_the_case_the_system_opens_for_it() -> None:
    asked: list[str] = []

    def aftersales(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if len(asked) == 1:  # aftersales has not read the lost scan yet
            return httpx.Response(404, json={"type": "case-not-found"})
        return httpx.Response(
            200, json={"case_id": "case_lost_shp_1", "opened_at": OPENED.isoformat()}
        )

    async def play() -> Player:
        client = httpx.AsyncClient(
            base_url="http://aftersales", transport=httpx.MockTransport(aftersales)
        )
        player = Player(
            SimpleNamespace(anomalies=[], stories=[]),  # type: ignore[arg-type]
            Scale(speedup=2880),
            Clients({"aftersales": client}),
            kafka_bootstrap="unused",
            tolerance_s=10,
        )
        player.shipment_ids["o1"] = "shp_1"
        await player._record_lost_parcel_case("o1", "a-7", Played(SENT, SENT))
        await client.aclose()
        return player

    player = asyncio.run(play())
    [label] = player.labels
    assert asked == ["/cases/case_lost_shp_1", "/cases/case_lost_shp_1"]
    assert (label.id, label.kind, label.rule) == ("a-7-case", "sla_breach", "case.sla_breached")
    assert label.match == {"case_id": "case_lost_shp_1"}
    assert label.injected_at == SENT
    assert label.due_at == OPENED + timedelta(seconds=FIRST_RESPONSE_S / 2880)
    assert label.window_end == label.due_at + timedelta(seconds=10)
