"""Shipments (the logistics service's, through its API as the signed-in person): the stalled,
overdue, exception and compensated lists, a shipment with its scans and history, and
reassignment to another carrier."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from orderguard.services.notifier.console.service_client import ServiceError
from orderguard.services.notifier.console.web import PageKit, SignedIn, form

PREFIX = "/console"
LISTS = ("stalled", "overdue", "exception", "compensated")


def add_pages(router: APIRouter, kit: PageKit) -> None:
    @router.get("/shipments")
    async def shipments_page(request: Request, me: SignedIn = kit.worker) -> Response:
        which = request.query_params.get("list", "stalled")
        if which not in LISTS:
            which = "stalled"
        found: list[dict[str, Any]] = []
        error = None
        try:
            found = await kit.client_of("logistics").call(
                me.person, "GET", "/shipments", params={"list": which}
            )
        except ServiceError as exc:
            error = str(exc)
        return kit.render(
            request,
            "shipments.html",
            signed_in=me,
            shipments=found,
            which=which,
            lists=LISTS,
            error=error,
        )

    @router.get("/shipments/{shipment_id}")
    async def shipment_page(
        request: Request, shipment_id: str, me: SignedIn = kit.worker
    ) -> Response:
        try:
            shipment = await kit.client_of("logistics").call(
                me.person, "GET", f"/shipments/{quote(shipment_id, safe='')}"
            )
        except ServiceError as exc:
            return kit.not_found(request, me, str(exc))
        return kit.render(
            request,
            "shipment.html",
            signed_in=me,
            shipment=shipment,
            error=request.query_params.get("error"),
            done=request.query_params.get("done"),
        )

    @router.post("/shipments/{shipment_id}/reassign")
    async def reassign_carrier(
        request: Request, shipment_id: str, me: SignedIn = kit.worker
    ) -> Response:
        given = await form(request)
        body: dict[str, Any] = {
            "carrier": given.get("carrier", "").strip(),
            "reason": given.get("reason", "").strip(),
        }
        if given.get("tracking_number", "").strip():
            body["tracking_number"] = given["tracking_number"].strip()
        target = f"{PREFIX}/shipments/{quote(shipment_id, safe='')}"
        try:
            await kit.client_of("logistics").call(
                me.person,
                "POST",
                f"/shipments/{quote(shipment_id, safe='')}/reassign",
                json=body,
                headers={"Idempotency-Key": given["form_token"]} if given.get("form_token") else {},
            )
        except ServiceError as exc:
            return RedirectResponse(f"{target}?{urlencode({'error': str(exc)})}", 303)
        return RedirectResponse(f"{target}?done=reassign", 303)
