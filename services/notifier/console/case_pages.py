"""After-sales cases (the aftersales service's, through its API as the signed-in person): the
list by first-response SLA due, a case with its stages, evidence and refunds, and the actions
its stage allows."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from orderguard.services.notifier.console import people
from orderguard.services.notifier.console.service_client import ServiceError
from orderguard.services.notifier.console.web import Denied, PageKit, SignedIn, form

PREFIX = "/console"
CASE_FILTERS = ("state", "type")
CASE_TYPES = ("return", "exchange", "refund", "repair", "complaint")
REFUND_ACTIONS = ("return", "partial", "compensation")


def add_pages(router: APIRouter, kit: PageKit) -> None:
    def case_path(case_id: str) -> str:
        return f"/cases/{quote(case_id, safe='')}"

    @router.get("/cases")
    async def cases_page(request: Request, me: SignedIn = kit.worker) -> Response:
        query = {k: v for k, v in request.query_params.items() if v and k in CASE_FILTERS}
        found: list[dict[str, Any]] = []
        error = None
        try:
            found = await kit.client_of("aftersales").call(
                me.person, "GET", "/cases", params={**query, "order": "sla_due"}
            )
        except ServiceError as exc:
            error = str(exc)
        now = datetime.now(UTC)
        for case in found:
            due = case.get("first_response_due_at")
            case["late"] = bool(
                due and not case.get("first_response_at") and datetime.fromisoformat(due) < now
            )
        return kit.render(
            request,
            "cases.html",
            signed_in=me,
            cases=found,
            query=query,
            case_types=CASE_TYPES,
            error=error,
        )

    @router.get("/cases/{case_id}")
    async def case_page(request: Request, case_id: str, me: SignedIn = kit.worker) -> Response:
        try:
            case = await kit.client_of("aftersales").call(me.person, "GET", case_path(case_id))
        except ServiceError as exc:
            return kit.not_found(request, me, str(exc))
        async with kit.runtime.pool.acquire() as conn:
            names = await people.display_names(conn)
        return kit.render(
            request,
            "case.html",
            signed_in=me,
            case=case,
            names=names,
            refund_actions=REFUND_ACTIONS,
            now=datetime.now(UTC),
            error=request.query_params.get("error"),
            done=request.query_params.get("done"),
        )

    @router.get("/cases/{case_id}/attachments/{attachment_id}")
    async def evidence_file(
        case_id: str, attachment_id: str, me: SignedIn = kit.worker
    ) -> Response:
        """The evidence's bytes, fetched as the person (a referenced file: its URL)."""
        path = f"{case_path(case_id)}/attachments/{quote(attachment_id, safe='')}"
        try:
            found = await kit.client_of("aftersales").send(me.person, "GET", path)
        except ServiceError:
            raise Denied(404, "no_attachment") from None
        if found.status_code in (301, 302, 307, 308) and found.headers.get(
            "location", ""
        ).startswith("https://"):
            return RedirectResponse(found.headers["location"], 303)
        return Response(
            found.content,
            media_type=found.headers.get("content-type", "application/octet-stream"),
            headers={
                "Content-Disposition": found.headers.get("content-disposition", "attachment"),
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
            },
        )

    @router.post("/cases/{case_id}/{action}")
    async def act_on_case(
        request: Request, case_id: str, action: str, me: SignedIn = kit.worker
    ) -> Response:
        """`refund` issues a refund line; `comment` adds a comment; any other name is a step of
        the case's flow (the aftersales service says which its stage allows)."""
        given = await form(request)
        note = given.get("note", "").strip() or None
        target = f"{PREFIX}/cases/{quote(case_id, safe='')}"
        try:
            if action == "refund":
                call = ("/refunds", refund_body(given))
            elif action == "comment":
                call = ("/comments", {"note": note or ""})
            else:
                body: dict[str, Any] = {"action": action, "note": note}
                if given.get("resolution", "").strip():
                    body["resolution"] = given["resolution"].strip()
                if given.get("satisfaction"):
                    body["satisfaction"] = int(given["satisfaction"])
                call = ("/actions", body)
            await kit.client_of("aftersales").call(
                me.person,
                "POST",
                case_path(case_id) + call[0],
                json=call[1],
                # One click, one effect: the form's token keys the write (a resubmitted form
                # replays the first answer).
                headers={"Idempotency-Key": given["form_token"]} if given.get("form_token") else {},
            )
        except (ServiceError, ValueError) as exc:
            return RedirectResponse(f"{target}?{urlencode({'error': str(exc)})}", 303)
        return RedirectResponse(f"{target}?{urlencode({'done': action})}", 303)


def refund_body(given: dict[str, str]) -> dict[str, Any]:
    """One refund line from the form; ValueError naming the field that is wrong."""
    try:
        quantity = int(given.get("quantity", ""))
    except ValueError:
        raise ValueError("quantity: a whole number") from None
    try:
        amount = Decimal(given.get("amount", ""))
    except InvalidOperation:
        raise ValueError("amount: a number of yuan, e.g. 19.90") from None
    return {
        "lines": [
            {
                "sku": given.get("sku", "").strip(),
                "quantity": quantity,
                "amount": str(amount),
                "action": given.get("refund_action", "return"),
            }
        ],
        "reason": given.get("reason", "").strip(),
    }
