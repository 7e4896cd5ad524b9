"""Routing and silences, for admins only (403 for everyone else, from the server): the routing
tree in force, silences with create and expire, and the notification delivery log with
re-send. All of it is the notifier's own, so the pages call its use cases in-process."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from orderguard.services.notifier import repository
from orderguard.services.notifier.config import routing_in_force
from orderguard.services.notifier.console.web import Denied, PageKit, SignedIn, form
from orderguard.services.notifier.deliveries import repository as deliveries
from orderguard.services.notifier.deliveries import service as delivery_service
from orderguard.services.notifier.routing_api import CreateSilence, SilenceView, routing_view
from orderguard.services.notifier.settings import NotifierSettings
from orderguard.shared.errors import DomainError
from orderguard.shared.http.idempotency import run_once_per_key
from orderguard.shared.http.problems import Problem
from orderguard.shared.uow import UnitOfWork

PREFIX = "/console"
DELIVERY_STATUSES = ("pending", "retrying", "delivered", "failed")
SHOWN = 100


def add_pages(router: APIRouter, kit: PageKit) -> None:
    runtime = kit.runtime

    async def once(key: str | None, route: str, body: Any, operation: Any) -> str | None:
        """One effect per submitted form (its token is the Idempotency-Key of the write); the
        refusal in words, or None."""
        try:
            await run_once_per_key(
                runtime.pool,
                runtime.schema,
                f"console:{key}" if key else None,
                route,
                body,
                operation,
            )
        except DomainError as exc:
            return f"{exc.title}: {exc.detail}"
        except Problem as exc:
            return f"{exc.title}: {exc.detail}" if exc.detail else exc.title
        return None

    @router.get("/routing")
    async def routing_page(request: Request, me: SignedIn = kit.admin) -> Response:
        status = request.query_params.get("status") or None
        if status not in DELIVERY_STATUSES:
            status = None
        now = datetime.now(UTC)
        async with runtime.pool.acquire() as conn:
            silences = [
                SilenceView.of(row, now).model_dump(mode="json")
                for row in await repository.find_silences(conn, None, now, SHOWN)
            ]
            log = await deliveries.find_deliveries(
                conn, status=status, channel=None, recipient=None, limit=SHOWN
            )
        return kit.render(
            request,
            "routing.html",
            signed_in=me,
            routing=routing_view(routing_in_force(runtime)),
            silences=silences,
            deliveries=log,
            delivery_status=status,
            statuses=DELIVERY_STATUSES,
            error=request.query_params.get("error"),
            done=request.query_params.get("done"),
        )

    @router.get("/deliveries/{delivery_id}")
    async def delivery_page(
        request: Request, delivery_id: uuid.UUID, me: SignedIn = kit.admin
    ) -> Response:
        """One delivery with every attempt made (a re-send's attempt among them)."""
        async with runtime.pool.acquire() as conn:
            found = await deliveries.delivery_with_attempts(conn, delivery_id)
        if found is None:
            raise Denied(404, "no_delivery")
        return kit.render(request, "delivery.html", signed_in=me, delivery=found)

    def back(**outcome: str) -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/routing?{urlencode(outcome)}", 303)

    @router.post("/silences")
    async def create_silence(request: Request, me: SignedIn = kit.admin) -> Response:
        given = await form(request)
        try:
            hours = float(given.get("hours", "") or "0")
            if not 0 < hours <= 24 * 90:
                raise ValueError("hours: more than 0, at most 2160 (90 days)")
            silence = CreateSilence(
                matchers=[m.strip() for m in given.get("matchers", "").splitlines() if m.strip()],
                comment=given.get("comment", "").strip(),
                ends_at=datetime.now(UTC) + timedelta(hours=hours),
            )
        except ValidationError as exc:
            return back(error="; ".join(_words(e) for e in exc.errors()))
        except ValueError as exc:
            return back(error=str(exc))

        async def create(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            row = await repository.insert_silence(
                uow.conn,
                uuid.uuid4(),
                silence.matchers,
                me.person.actor,
                silence.comment,
                uow.now,
                silence.ends_at,
            )
            return 201, SilenceView.of(row, uow.now).model_dump(mode="json")

        # The form's fields, not ends_at: a resubmission computes another end.
        posted = {"matchers": silence.matchers, "comment": silence.comment, "hours": hours}
        refused = await once(given.get("form_token"), "POST /silences", posted, create)
        return back(error=refused) if refused else back(done="silence_created")

    @router.post("/silences/{silence_id}/expire")
    async def expire_silence(silence_id: uuid.UUID, me: SignedIn = kit.admin) -> Response:
        async with UnitOfWork(runtime.pool, runtime.schema) as uow:
            row = await repository.expire_silence(uow.conn, silence_id, uow.now, me.person.actor)
            await uow.commit()
        return back(done="silence_expired") if row else back(error=f"No silence {silence_id}.")

    @router.post("/deliveries/{delivery_id}/resend")
    async def resend_delivery(
        request: Request, delivery_id: uuid.UUID, me: SignedIn = kit.admin
    ) -> Response:
        """Due again now, with a fresh budget: the delivery job's next attempt is logged as
        every attempt is. A resubmitted form (same token) re-sends nothing more."""
        given = await form(request)

        async def reopen(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            found = await delivery_service.resend(
                uow, delivery_id, runtime.settings.section(NotifierSettings).deliveries
            )
            return 202, {"id": str(found["id"]), "status": found["status"]}

        refused = await once(
            given.get("form_token"), f"POST /deliveries/{delivery_id}/resend", {}, reopen
        )
        return back(error=refused) if refused else back(done="resend")


def _words(error: Any) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "__root__")
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
