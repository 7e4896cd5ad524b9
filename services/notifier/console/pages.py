"""The console's pages, served by the notifier: sign-in and sessions, my queue (live), a work
item with its timeline, and the admin's people page.

Authorisation happens here, on the server: a person sees and acts on the work items of their
teams only (403 otherwise); admins see every team and manage people. Every POST carries the
session's CSRF token (a form field or the X-CSRF-Token header).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from orderguard.services.notifier.console import (
    case_pages,
    oidc,
    people,
    routing_pages,
    service_client,
    sessions,
    shipment_pages,
)
from orderguard.services.notifier.console.i18n import (
    LANG_COOKIE,
    LANGUAGES,
    language_of,
    translator,
)
from orderguard.services.notifier.console.web import Denied, PageKit, Redirect, SignedIn
from orderguard.services.notifier.console.web import form as _form
from orderguard.services.notifier.console.web import form_lists as _form_lists
from orderguard.services.notifier.settings import NotifierSettings
from orderguard.services.notifier.work_items import analytics, domain, handlers, repository
from orderguard.services.notifier.work_items.domain import (
    ClaimedByAnother,
    IllegalTransition,
    SlaPolicy,
    State,
)
from orderguard.shared.errors import Forbidden, Invalid
from orderguard.shared.logging import get_logger
from orderguard.shared.runtime import Runtime
from orderguard.shared.uow import UnitOfWork

PREFIX = "/console"
HERE = Path(__file__).parent
STATIC = HERE / "static"
# A sign-in form's CSRF token lives in its own cookie until there is a session (login CSRF).
PRE_CSRF_COOKIE = "og_signin_csrf"
QUEUE_LIMIT = 200
# The live queue checks for changes this often, and a stream ends after this long (the
# browser's EventSource reconnects by itself).
LIVE_POLL_S = 2.0
LIVE_STREAM_S = 300.0
# A change is stamped with its transaction's start and seen at its commit: look back this far.
LIVE_LOOKBACK = timedelta(seconds=10)
MIN_PASSWORD = 12
# The analytics page's bucket switch: each bucket's look-back window.
ANALYTICS_WINDOWS = {"hour": timedelta(hours=48), "day": timedelta(days=7)}
TOP_N = 5  # SKUs and customers shown per anomaly kind
STATIC_FILES = frozenset(p.name for p in STATIC.iterdir() if p.suffix in {".js", ".css"})

templates = Jinja2Templates(directory=HERE / "templates")
log = get_logger(__name__)


def cookie_name(runtime: Runtime) -> str:
    # __Host- cookies must be Secure, path /, and without a domain: no subdomain can set them.
    return (
        "__Host-og_session"
        if runtime.settings.section(NotifierSettings).console_cookie_secure
        else "og_session"
    )


ORDER_FILTERS = ("order_id", "customer_id", "status", "hold_reason", "channel")
BIN_FILTERS = ("reason", "category", "state", "from", "to", "channel", "customer_type", "sku")


def build_router(runtime: Runtime, policy: SlaPolicy) -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=ConsoleRoute)
    settings = runtime.settings.section(NotifierSettings)
    idle = timedelta(seconds=settings.console_session_idle_s)
    absolute = timedelta(seconds=settings.console_session_absolute_s)
    session_cookie = cookie_name(runtime)

    def render(
        request: Request,
        template: str,
        status: int = 200,
        signed_in: SignedIn | None = None,
        **context: Any,
    ) -> HTMLResponse:
        language = language_of(request)
        return templates.TemplateResponse(
            request,
            template,
            {
                "t": translator(language),
                "lang": language,
                "languages": LANGUAGES,
                "me": signed_in.person if signed_in else None,
                "csrf": signed_in.session.csrf_token if signed_in else None,
                "prefix": PREFIX,
                # Keys a form's write once (Idempotency-Key): a resubmitted form has no second effect.
                "form_token": uuid.uuid4().hex,
                "status": status,
                **context,
            },
            status_code=status,
        )

    async def signed_in(request: Request) -> SignedIn:
        token = request.cookies.get(session_cookie)
        if token:
            async with runtime.pool.acquire() as conn:
                session = await sessions.resume(conn, token, datetime.now(UTC), idle)
                person = await people.by_id(conn, session.person_id) if session else None
            if session and person and not person.disabled:
                if request.method != "GET":
                    form = await _form(request) if _is_form(request) else {}
                    presented = request.headers.get("x-csrf-token") or form.get("csrf_token")
                    if not sessions.csrf_matches(session, presented):
                        raise Denied(403, "csrf")
                return SignedIn(person, session, token)
        raise Redirect(f"{PREFIX}/sign-in")

    Me = Depends(signed_in)

    async def ready_to_work(me: SignedIn = Me) -> SignedIn:
        if me.person.must_change_password:
            raise Redirect(f"{PREFIX}/password")
        return me

    Worker = Depends(ready_to_work)

    async def admin(me: SignedIn = Worker) -> SignedIn:
        if not me.person.is_admin:
            raise Denied(403, "admins_only")
        return me

    @router.get("/static/{name}")
    async def static_file(name: str) -> Response:
        """The committed JS and CSS files (a fixed list: no path reaches outside the folder)."""
        if name not in STATIC_FILES:
            raise Denied(404, "not_found")
        return FileResponse(STATIC / name, headers={"Cache-Control": "max-age=3600"})

    # ---- sign-in, sign-out, password, language ------------------------------------------

    provider = oidc.Provider(settings.console_oidc) if settings.console_oidc else None

    @router.get("/sign-in")
    async def sign_in_page(request: Request) -> Response:
        pre = request.cookies.get(PRE_CSRF_COOKIE) or uuid.uuid4().hex
        response = render(request, "sign_in.html", csrf_pre=pre, provider=provider)
        _set_cookie(response, PRE_CSRF_COOKIE, pre, max_age=3600)
        return response

    @router.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        form = await _form(request)
        pre = request.cookies.get(PRE_CSRF_COOKIE)
        if not pre or form.get("csrf_token") != pre:
            raise Denied(403, "csrf")
        async with runtime.pool.acquire() as conn:
            person = await people.authenticate(
                conn, form.get("login", "").strip(), form.get("password", "")
            )
            if person is None:
                return render(
                    request, "sign_in.html", 401, csrf_pre=pre, failed=True, provider=provider
                )
            token, _ = await sessions.start(conn, person.id, datetime.now(UTC), absolute)
        response = RedirectResponse(
            f"{PREFIX}/password" if person.must_change_password else f"{PREFIX}/", 303
        )
        _set_cookie(response, session_cookie, token, max_age=int(absolute.total_seconds()))
        response.delete_cookie(PRE_CSRF_COOKIE, path="/")
        return response

    # ---- OpenID Connect sign-in (oidc.py) ----------------------------------------------------

    # The provider sends the browser back cross-site: this cookie must be SameSite=Lax to come
    # along (the session cookie, Strict, is set on our own page afterwards).
    oidc_cookie = "__Host-og_oidc" if settings.console_cookie_secure else "og_oidc"

    @router.get("/oidc/start")
    async def oidc_start(request: Request) -> Response:
        if provider is None:
            raise Denied(404, "not_found")
        redirect_uri = provider.settings.redirect_url or str(
            request.url.replace(path=f"{PREFIX}/oidc/callback", query="")
        )
        try:
            async with runtime.pool.acquire() as conn:
                token, url = await provider.begin(conn, redirect_uri, datetime.now(UTC))
        except (oidc.SignInRefused, httpx.HTTPError) as exc:
            log.warning("oidc sign-in could not start", error=type(exc).__name__)
            return oidc_refused(request, "oidc_failed")
        response = RedirectResponse(url, 303)
        response.set_cookie(
            oidc_cookie,
            token,
            max_age=int(oidc.PENDING_FOR.total_seconds()),
            path="/",
            secure=True,
            httponly=True,
            samesite="lax",
        )
        return response

    @router.get("/oidc/callback")
    async def oidc_callback(request: Request) -> Response:
        if provider is None:
            raise Denied(404, "not_found")
        now = datetime.now(UTC)
        try:
            async with runtime.pool.acquire() as conn:
                claims = await provider.finish(
                    conn, request.cookies.get(oidc_cookie), request.query_params, now
                )
                grants = oidc.grants_of(claims, provider.settings)
                person = await oidc.person_of(conn, provider.issuer, claims, grants)
                token, _ = await sessions.start(conn, person.id, now, absolute)
        except oidc.SignInRefused as exc:
            log.warning("oidc sign-in refused", why=str(exc))
            return oidc_refused(request, exc.reason)
        except httpx.HTTPError as exc:
            log.warning("oidc provider unreachable", error=type(exc).__name__)
            return oidc_refused(request, "oidc_failed")
        log.info("oidc sign-in", person_id=str(person.id))
        # A page of ours moves on to the console: a redirect in this cross-site chain would
        # not carry the new SameSite=Strict session cookie.
        response = render(request, "signed_in.html", next_url=f"{PREFIX}/")
        _set_cookie(response, session_cookie, token, max_age=int(absolute.total_seconds()))
        response.delete_cookie(oidc_cookie, path="/", secure=True, httponly=True, samesite="lax")
        return response

    def oidc_refused(request: Request, reason: str) -> Response:
        pre = request.cookies.get(PRE_CSRF_COOKIE) or uuid.uuid4().hex
        response = render(
            request, "sign_in.html", 401, csrf_pre=pre, provider=provider, oidc_error=reason
        )
        _set_cookie(response, PRE_CSRF_COOKIE, pre, max_age=3600)
        return response

    @router.post("/sign-out")
    async def sign_out(me: SignedIn = Me) -> Response:
        async with runtime.pool.acquire() as conn:
            await sessions.end(conn, me.token)
        response = RedirectResponse(f"{PREFIX}/sign-in", 303)
        response.delete_cookie(session_cookie, path="/", secure=settings.console_cookie_secure)
        return response

    @router.get("/password")
    async def password_page(request: Request, me: SignedIn = Me) -> Response:
        return render(request, "password.html", signed_in=me)

    @router.post("/password")
    async def change_password(request: Request, me: SignedIn = Me) -> Response:
        form = await _form(request)
        new = form.get("new_password", "")
        async with runtime.pool.acquire() as conn:
            if await people.authenticate(conn, me.person.login, form.get("password", "")) is None:
                return render(request, "password.html", 401, signed_in=me, failed="bad_sign_in")
            if len(new) < MIN_PASSWORD:
                return render(request, "password.html", 422, signed_in=me, failed="new_password")
            await people.set_password(conn, me.person.id, new)
        return RedirectResponse(f"{PREFIX}/", 303)

    @router.get("/language/{language}")
    async def choose_language(request: Request, language: str) -> Response:
        back = request.headers.get("referer") or f"{PREFIX}/"
        # Only back into the console: the Referer is the browser's, not a redirect target.
        response = RedirectResponse(back if PREFIX in back else f"{PREFIX}/", 303)
        if language in LANGUAGES:
            _set_cookie(response, LANG_COOKIE, language, max_age=365 * 24 * 3600, http_only=False)
        return response

    # ---- my queue ----------------------------------------------------------------------------

    async def queue_of(
        person: people.Person, query: dict[str, str]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        teams = sorted(person.teams) if not person.is_admin else list(_all_teams())
        chosen = query.get("team") or ""
        if chosen and not person.may_see(chosen):
            raise Denied(403, "forbidden")
        states = (query["state"],) if query.get("state") else ("open", "claimed")
        rows: list[dict[str, Any]] = []
        async with runtime.pool.acquire() as conn:
            for team in [chosen] if chosen else teams:
                found, _ = await repository.find(
                    conn,
                    repository.QueueFilter(
                        team=team,
                        states=states,
                        severity=query.get("severity") or None,
                        rule=query.get("rule") or None,
                    ),
                    QUEUE_LIMIT,
                    0,
                )
                rows.extend(found)
        far = datetime.max.replace(tzinfo=UTC)
        rows.sort(key=lambda r: (domain.priority_of(r["severity"]), r["due_at"] or far))
        return rows[:QUEUE_LIMIT], teams

    @router.get("/")
    async def my_queue(request: Request, me: SignedIn = Worker) -> Response:
        query = dict(request.query_params)
        rows, teams = await queue_of(me.person, query)
        async with runtime.pool.acquire() as conn:
            names = await people.display_names(conn)
        fragment = request.headers.get("hx-request") == "true"
        return render(
            request,
            "queue_rows.html" if fragment else "queue.html",
            signed_in=me,
            items=rows,
            names=names,
            teams=teams,
            query=query,
            now=datetime.now(UTC),
            severities=("P1", "P2", "P3", "P4"),
            states=[str(s) for s in State],
        )

    @router.get("/live")
    async def live_queue(me: SignedIn = Worker) -> StreamingResponse:
        """Server-sent events: `queue` whenever items of my teams change, its data the ids of
        the items changed (JSON: {"items": [...]})."""
        teams = sorted(me.person.teams) if not me.person.is_admin else list(_all_teams())

        async def recent(since: datetime) -> tuple[datetime, dict[str, datetime]]:
            """The database's clock, and my teams' items changed since LIVE_LOOKBACK before
            `since` (the previous look)."""
            async with runtime.pool.acquire() as conn:
                now = await conn.fetchval("SELECT clock_timestamp()")
                rows = await conn.fetch(
                    "SELECT id, updated_at FROM work_items WHERE team = ANY($1::text[])"
                    " AND updated_at > $2::timestamptz - $3::interval",
                    teams,
                    since,
                    LIVE_LOOKBACK,
                )
            return now, {str(row["id"]): row["updated_at"] for row in rows}

        async def changes() -> AsyncIterator[str]:
            ends = asyncio.get_running_loop().time() + LIVE_STREAM_S
            now, told = await recent(datetime.now(UTC))
            # Sent once the baseline is taken: every change after it is told.
            yield "retry: 3000\n\n"
            while asyncio.get_running_loop().time() < ends:
                await asyncio.sleep(LIVE_POLL_S)
                now, current = await recent(now)
                changed = [item for item, at in current.items() if told.get(item) != at]
                told = {**told, **current}
                told = {item: at for item, at in told.items() if at > now - LIVE_LOOKBACK}
                if changed:
                    yield f"event: queue\ndata: {json.dumps({'items': changed})}\n\n"

        return StreamingResponse(
            changes(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    # ---- one work item -----------------------------------------------------------------------

    async def item_for(me: SignedIn, item_id: uuid.UUID) -> dict[str, Any]:
        async with runtime.pool.acquire() as conn:
            found = await repository.detail(conn, str(item_id))
            names = await people.display_names(conn)
        if found is None:
            raise Denied(404, "not_found")
        if not me.person.may_see(found["team"]):
            raise Denied(403, "forbidden")
        found["names"] = names
        return found

    @router.get("/work-items/{item_id}")
    async def work_item_page(
        request: Request, item_id: uuid.UUID, me: SignedIn = Worker
    ) -> Response:
        item = await item_for(me, item_id)
        members: list[people.Person] = []
        if me.person.leads(item["team"]):  # whom a lead may give it to
            async with runtime.pool.acquire() as conn:
                members = await people.members_of(conn, item["team"])
        return render(
            request,
            "work_item.html",
            signed_in=me,
            item=item,
            members=members,
            allowed=domain.allowed_actions(State(item["state"])),
            now=datetime.now(UTC),
            error=request.query_params.get("error"),
        )

    @router.post("/work-items/{item_id}/{action}")
    async def act_on_work_item(
        request: Request, item_id: uuid.UUID, action: str, me: SignedIn = Worker
    ) -> Response:
        item = await item_for(me, item_id)
        form = await _form(request)
        actor = me.person.actor
        name = me.person.display_name  # stored with the timeline entry
        reason = form.get("reason", "").strip() or None
        now = datetime.now(UTC)
        error = None
        try:
            async with UnitOfWork(runtime.pool, runtime.schema) as uow:
                if action == "claim":
                    await handlers.change(
                        uow,
                        runtime.topics.work_items,
                        str(item_id),
                        lambda it: domain.claim(it, actor, now, policy),
                        name,
                    )
                elif action == "resolve":
                    await handlers.change(
                        uow,
                        runtime.topics.work_items,
                        str(item_id),
                        lambda it: domain.resolve(it, actor, reason, now, policy),
                        name,
                    )
                elif action == "dismiss":
                    if reason is None:
                        raise ValueError("reason")
                    await handlers.change(
                        uow,
                        runtime.topics.work_items,
                        str(item_id),
                        lambda it: domain.dismiss(it, actor, reason, now, policy),
                        name,
                    )
                elif action == "reassign":
                    # The handler checks that I lead the item's team and the assignee is in it.
                    await handlers.reassign(
                        uow,
                        runtime.topics.work_items,
                        policy,
                        str(item_id),
                        actor,
                        me.person.login,
                        form.get("assignee", ""),
                        name,
                    )
                elif action == "comment":
                    body = form.get("body", "").strip()
                    if not body:
                        raise ValueError("comment")
                    await handlers.comment(
                        uow, runtime.topics.work_items, str(item_id), actor, body[:5000], name
                    )
                else:
                    raise Denied(404, "not_found")
                await uow.commit()
        except IllegalTransition as exc:
            error = f"Cannot {action} a {exc.current} work item."
        except ClaimedByAnother as exc:
            error = f"Claimed by {item['names'].get(exc.claimed_by, exc.claimed_by)}."
        except ValueError as exc:
            error = f"{exc}: required"
        except Forbidden:
            raise Denied(403, "forbidden") from None
        except Invalid as exc:
            error = exc.detail
        if request.headers.get("hx-request") == "true" and error:
            return Response(error, status_code=409)
        target = f"{PREFIX}/work-items/{item_id}"
        return RedirectResponse(target + (f"?error={error}" if error else ""), 303)

    # ---- recycle bin (the order service's, through its API) ----------------------------------

    def orders() -> service_client.ServiceClient:
        client = service_client.service_client(runtime, "order")
        if client is None:
            raise Denied(503, "no_order_service")
        return client

    @router.get("/recycle-bin")
    async def recycle_bin_page(request: Request, me: SignedIn = Worker) -> Response:
        query = {k: v for k, v in request.query_params.items() if v and k in BIN_FILTERS}
        params = {"state": query.get("state", "in_bin"), **query}
        error = request.query_params.get("error")
        entries: list[dict[str, Any]] = []
        charts: dict[str, list[dict[str, Any]]] = {}
        try:
            client = orders()
            entries = (await client.call(me.person, "GET", "/recycle-bin", params=params))["items"]
            stats_filter = {k: v for k, v in params.items() if k != "state"}
            for dimension in ("reason", "sku", "channel", "week"):
                stats = await client.call(
                    me.person,
                    "GET",
                    "/recycle-bin/stats",
                    params={"group_by": dimension, **stats_filter},
                )
                charts[dimension] = [
                    {"label": g["key"][dimension], "value": g["orders"]}
                    for g in sorted(stats["groups"], key=lambda g: -g["orders"])[:10]
                ]
        except service_client.ServiceError as exc:
            error = str(exc)
        return render(
            request,
            "recycle_bin.html",
            signed_in=me,
            entries=entries,
            charts=charts,
            query=query,
            state=params["state"],
            filters=urlencode(params),
            # One view per state, each keeping the other filters.
            views=[
                (view, urlencode({**query, "state": view}))
                for view in ("in_bin", "restored", "archived", "purged")
            ],
            error=error,
            restored=request.query_params.get("restored"),
        )

    @router.post("/recycle-bin/restore")
    async def restore_from_bin(request: Request, me: SignedIn = Worker) -> Response:
        """Restore one order or several (each on its own: one failure stops none of the rest)."""
        posted = await _form_lists(request)
        chosen = posted.get("order_id", [])
        # Back to the same view and filters (only the known ones).
        kept = {
            k: v
            for k, v in parse_qsl((posted.get("filters") or [""])[-1])
            if v and k in BIN_FILTERS
        }
        problems: list[str] = []
        client = orders()
        for order_id in chosen:
            try:
                await client.call(
                    me.person,
                    "POST",
                    f"/orders/{quote(order_id, safe='')}/recycle-bin/restore",
                    json={"reason": "restored in the console"},
                )
            except service_client.ServiceError as exc:
                problems.append(f"{order_id}: {exc}")
        restored = len(chosen) - len(problems)
        target = f"{PREFIX}/recycle-bin?{urlencode({**kept, 'restored': restored})}"
        if problems:
            target += "&" + urlencode({"error": "; ".join(problems)})
        return RedirectResponse(target, 303)

    # ---- orders (the order service's, through its API) ---------------------------------------

    @router.get("/orders")
    async def orders_page(request: Request, me: SignedIn = Worker) -> Response:
        query = {k: v for k, v in request.query_params.items() if v and k in ORDER_FILTERS}
        if "order_id" in query:
            return RedirectResponse(f"{PREFIX}/orders/{quote(query['order_id'], safe='')}", 303)
        found: list[dict[str, Any]] = []
        error = None
        try:
            found = (await orders().call(me.person, "GET", "/orders", params=query))["orders"]
        except service_client.ServiceError as exc:
            error = str(exc)
        return render(request, "orders.html", signed_in=me, orders=found, query=query, error=error)

    @router.get("/orders/{order_id}")
    async def order_page(request: Request, order_id: str, me: SignedIn = Worker) -> Response:
        try:
            order = await orders().call(me.person, "GET", f"/orders/{quote(order_id, safe='')}")
        except service_client.ServiceError as exc:
            return render(request, "error.html", 404, signed_in=me, message=str(exc))
        return render(
            request,
            "order.html",
            signed_in=me,
            order=order,
            error=request.query_params.get("error"),
        )

    @router.post("/orders/{order_id}/{action}")
    async def act_on_order(
        request: Request, order_id: str, action: str, me: SignedIn = Worker
    ) -> Response:
        form = await _form(request)
        reason = form.get("reason", "").strip()
        path = f"/orders/{quote(order_id, safe='')}"
        body: dict[str, Any] = {"reason": reason}
        if action == "recycle-bin":
            body["category"] = form.get("category", "")
        elif action not in ("hold", "release", "cancel"):
            raise Denied(404, "not_found")
        target = f"{PREFIX}/orders/{quote(order_id, safe='')}"
        try:
            await orders().call(me.person, "POST", f"{path}/{action}", json=body)
        except service_client.ServiceError as exc:
            target += "?" + urlencode({"error": str(exc)})
        return RedirectResponse(target, 303)

    # ---- analytics ---------------------------------------------------------------------------

    @router.get("/analytics")
    async def analytics_page(
        request: Request, me: SignedIn = Worker, bucket: str = "day"
    ) -> Response:
        status, error = 200, None
        if bucket not in ANALYTICS_WINDOWS:
            # A clear word, and the default view rather than an empty page.
            status, error = 400, f"bucket must be one of {', '.join(ANALYTICS_WINDOWS)}"
            bucket = "day"
        span: analytics.Bucket = "hour" if bucket == "hour" else "day"
        end = datetime.now(UTC)
        start = end - ANALYTICS_WINDOWS[span]
        # A person sees their teams' numbers; admins see every team's.
        teams = None if me.person.is_admin else sorted(me.person.teams)
        window = partial(
            analytics.series, bucket=span, start=start, end=end, team=None, teams=teams
        )
        top = partial(analytics.top_by_rule, start=start, end=end, teams=teams, limit=TOP_N)
        async with runtime.pool.acquire() as conn:
            per_rule = await window(conn, table="anomalies", by="rule")
            per_team = await window(conn, table="work_items", by="team")
            times = await analytics.response_times(
                conn, start=start, end=end, team=None, teams=teams
            )
            escalated = await analytics.escalations(
                conn, bucket=span, start=start, end=end, teams=teams
            )
            top_skus = await top(conn, label="sku")
            top_customers = await top(conn, label="customer")
        pareto: list[dict[str, Any]] = []
        client = service_client.service_client(runtime, "order")
        if client is not None:
            try:
                stats = await client.call(
                    me.person, "GET", "/recycle-bin/stats", params={"group_by": "reason"}
                )
                pareto = [
                    {"label": g["key"]["reason"], "value": g["orders"]}
                    for g in sorted(stats["groups"], key=lambda g: -g["orders"])[:10]
                ]
            except service_client.ServiceError as exc:
                error = str(exc)
        label_format = "%m-%d %H:00" if span == "hour" else "%m-%d"
        per_bucket = [
            {
                "label": at.strftime(label_format),
                "value": sum(s["counts"][i] for s in per_rule["series"]),
            }
            for i, at in enumerate(per_rule["buckets"])
        ]
        escalations_per_bucket = [
            {"bucket": at.strftime(label_format), "team": s["key"], "n": s["counts"][i]}
            for i, at in enumerate(escalated["buckets"])
            for s in escalated["series"]
            if s["counts"][i]
        ]

        def top_rows(by_rule: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
            return [
                {"rule": rule, "key": t["key"], "n": t["n"]}
                for rule, ranked in by_rule.items()
                for t in ranked
            ]

        def top_chart(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{"label": f"{r['rule']} · {r['key']}", "value": r["n"]} for r in rows]

        skus, customers = top_rows(top_skus), top_rows(top_customers)
        return render(
            request,
            "analytics.html",
            status=status,
            signed_in=me,
            bucket=span,
            per_rule=[{"label": s["key"], "value": s["total"]} for s in per_rule["series"]],
            per_bucket=per_bucket if any(d["value"] for d in per_bucket) else [],
            per_team=[{"label": s["key"], "value": s["total"]} for s in per_team["series"]],
            escalations=[{"label": s["key"], "value": s["total"]} for s in escalated["series"]],
            escalations_per_bucket=escalations_per_bucket,
            times=times["rows"],
            top_skus=skus,
            top_skus_chart=top_chart(skus),
            top_customers=customers,
            top_customers_chart=top_chart(customers),
            top_n=TOP_N,
            pareto=pareto,
            error=error,
            teams=teams,
        )

    # ---- people (admins) ---------------------------------------------------------------------

    @router.get("/people")
    async def people_page(request: Request, me: SignedIn = Depends(admin)) -> Response:
        async with runtime.pool.acquire() as conn:
            everyone = await people.all_people(conn)
        return render(
            request,
            "people.html",
            signed_in=me,
            everyone=everyone,
            error=request.query_params.get("error"),
        )

    @router.post("/people")
    async def add_person(request: Request, me: SignedIn = Depends(admin)) -> Response:
        form = await _form(request)
        try:
            teams = parse_memberships(form.get("teams", ""))
            if len(form.get("password", "")) < MIN_PASSWORD:
                raise ValueError(f"password: at least {MIN_PASSWORD} characters")
            async with runtime.pool.acquire() as conn:
                await people.add(
                    conn,
                    form.get("login", "").strip(),
                    form.get("display_name", "").strip() or form.get("login", ""),
                    form["password"],
                    teams=teams,
                    is_admin=form.get("is_admin") == "on",
                )
        except (ValueError, people.PersonExists) as exc:
            return RedirectResponse(f"{PREFIX}/people?error={exc}", 303)
        return RedirectResponse(f"{PREFIX}/people", 303)

    @router.post("/people/{login}/disable")
    async def disable_person(login: str, me: SignedIn = Depends(admin)) -> Response:
        async with runtime.pool.acquire() as conn:
            await people.disable(conn, login)
        return RedirectResponse(f"{PREFIX}/people", 303)

    # ---- pages in modules of their own (after-sales cases, shipments, routing) -----------
    kit = PageKit(runtime, render, Worker, Depends(admin))
    for pages_of in (case_pages, shipment_pages, routing_pages):
        pages_of.add_pages(router, kit)

    return router


def parse_memberships(text: str) -> dict[str, people.TeamRole]:
    """`warehouse:lead, finance` -> {"warehouse": "lead", "finance": "operator"}; teams are the
    routing file's."""
    teams: dict[str, people.TeamRole] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        team, _, role = part.partition(":")
        role = role.strip() or "operator"
        if team not in _all_teams():
            raise ValueError(f"unknown team {team!r}; one of {', '.join(_all_teams())}")
        if role not in people.ROLES:
            raise ValueError(f"unknown role {role!r}; one of {', '.join(people.ROLES)}")
        teams[team.strip()] = role
    return teams


def _all_teams() -> tuple[str, ...]:
    from typing import get_args

    from orderguard.shared.events.anomalies import Team

    return get_args(Team)


def _is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")


def _set_cookie(
    response: Response, name: str, value: str, *, max_age: int, http_only: bool = True
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=True,
        httponly=http_only,
        samesite="strict" if http_only else "lax",
    )


class ConsoleRoute(APIRoute):
    """Turns the console's Redirect and Denied (raised by routes and their dependencies) into a
    redirect and an error page in the person's language, not problem+json."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                return await handle(request)
            except Redirect as exc:
                if request.headers.get("hx-request") == "true":
                    return Response(status_code=401, headers={"HX-Redirect": exc.to})
                return RedirectResponse(exc.to, 303)
            except Denied as exc:
                language = language_of(request)
                t = translator(language)
                return templates.TemplateResponse(
                    request,
                    "error.html",
                    {
                        "t": t,
                        "lang": language,
                        "languages": LANGUAGES,
                        "me": None,
                        "prefix": PREFIX,
                        "status": exc.status,
                        "message": t(exc.message_key),
                    },
                    status_code=exc.status,
                )

        return console_handler
