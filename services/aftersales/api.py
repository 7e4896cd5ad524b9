"""HTTP API of the aftersales service: cases, their flow, evidence and refunds."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path as FilePath
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from orderguard.services.aftersales import handlers, repository
from orderguard.services.aftersales.domain import (
    Actor,
    CaseLine,
    IllegalTransition,
    InvalidCase,
    RefundLine,
    TimelineEntry,
    allowed_actions,
    new_id,
)
from orderguard.services.aftersales.handlers import (
    AlreadyRefunded,
    CaseFile,
    CaseNotFound,
    OpenCase,
    OrderUnknown,
)
from orderguard.services.aftersales.repository import Attachment, Refund
from orderguard.services.aftersales.rules import CaseSlaBreached
from orderguard.shared.detection.config import RuleConfig
from orderguard.shared.http import Caller, Problem, require_scope
from orderguard.shared.http.idempotency import IdempotencyKey, run_once_per_key
from orderguard.shared.runtime import Runtime
from orderguard.shared.uow import UnitOfWork

CASE_ID = Path(min_length=1, max_length=64)
IDENTIFIER = r"^[A-Za-z0-9._-]+$"
CaseTypeIn = Literal["return", "exchange", "refund", "repair", "complaint"]
Action = Literal[
    "approve",
    "reject",
    "receive_goods",
    "ship_replacement",
    "finish_repair",
    "return_to_customer",
    "close",
    "collect_evidence",
    "investigate",
    "resolve",
    "request_feedback",
    "visit",
    "score",
]


class CaseLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=64, pattern=IDENTIFIER)
    quantity: int = Field(gt=0, le=100_000, strict=True)


class OpenCaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: str = Field(min_length=1, max_length=64)
    case_type: CaseTypeIn
    lines: list[CaseLineIn] = Field(default_factory=list, max_length=200)
    reason: str | None = Field(
        default=None,
        max_length=1000,
        description="Optional for a return within the no-reason window; required otherwise",
    )
    priority: Literal["P1", "P2", "P3", "P4"] = "P3"
    channel: str | None = Field(default=None, max_length=32, pattern=IDENTIFIER)

    def to_command(self) -> OpenCase:
        return OpenCase(
            order_id=self.order_id,
            case_type=self.case_type,
            lines=tuple(CaseLine(line.sku, line.quantity) for line in self.lines),
            reason=(self.reason or "").strip() or None,
            priority=self.priority,
            channel=self.channel,
        )


class CaseActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
    note: str | None = Field(default=None, max_length=2000)
    resolution: str | None = Field(default=None, max_length=2000)
    satisfaction: int | None = Field(default=None, ge=1, le=5, description="1-5, with score")


class CommentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=2000)


class AttachmentReferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(min_length=1, max_length=100)
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    url: str = Field(pattern=r"^https://\S+$", max_length=2000)


class RefundLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=64, pattern=IDENTIFIER)
    quantity: int = Field(gt=0, le=100_000, strict=True)
    amount: Decimal = Field(gt=0, max_digits=12, decimal_places=2, description="yuan")
    action: Literal["return", "partial", "compensation"] = Field(
        default="return",
        description="return: goods sent back; partial: kept with a partial refund; compensation",
    )


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: list[RefundLineIn] = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=1000)


class TimelineEntryView(BaseModel):
    at: datetime
    what: str
    actor: str
    note: str | None
    from_state: str | None
    to_state: str | None
    event_type: str | None
    event_id: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, e: TimelineEntry) -> TimelineEntryView:
        return cls(
            at=e.at,
            what=e.what,
            actor=str(e.actor),
            note=e.note,
            from_state=e.from_state,
            to_state=e.to_state,
            event_type=e.event_type,
            event_id=e.event_id,
            details=dict(e.details),
        )


class AttachmentView(BaseModel):
    attachment_id: str
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    storage: str
    reference: str
    uploaded_by: str
    uploaded_at: datetime

    @classmethod
    def of(cls, a: Attachment) -> AttachmentView:
        return cls(
            attachment_id=a.attachment_id,
            filename=a.filename,
            content_type=a.content_type,
            size_bytes=a.size_bytes,
            sha256=a.sha256,
            storage=a.storage,
            reference=a.reference,
            uploaded_by=a.uploaded_by,
            uploaded_at=a.uploaded_at,
        )


class RefundLineView(BaseModel):
    sku: str
    quantity: int
    amount: Decimal
    action: str


class RefundView(BaseModel):
    refund_id: str
    amount: Decimal
    reason: str
    issued_by: str
    issued_at: datetime
    lines: list[RefundLineView]

    @classmethod
    def of(cls, r: Refund) -> RefundView:
        return cls(
            refund_id=r.refund_id,
            amount=r.amount,
            reason=r.reason,
            issued_by=r.issued_by,
            issued_at=r.issued_at,
            lines=[
                RefundLineView(sku=x.sku, quantity=x.quantity, amount=x.amount, action=x.action)
                for x in r.lines
            ],
        )


class CaseView(BaseModel):
    case_id: str
    order_id: str
    customer_id: str
    channel: str | None
    case_type: str
    state: str
    allowed_actions: list[str]
    priority: str
    reason: str
    lines: list[CaseLineIn]
    needs_review: bool = Field(description="A return after the no-reason window waits for staff")
    policy: dict[str, Any]
    opened_at: datetime
    updated_at: datetime
    first_response_due_at: datetime | None
    first_response_at: datetime | None
    closed_at: datetime | None
    resolution: str | None
    satisfaction: int | None
    attachments: list[AttachmentView]
    refunds: list[RefundView]
    timeline: list[TimelineEntryView]

    @classmethod
    def of(cls, found: CaseFile) -> CaseView:
        c = found.case
        return cls(
            case_id=c.case_id,
            order_id=c.order_id,
            customer_id=c.customer_id,
            channel=c.channel,
            case_type=c.case_type,
            state=c.state,
            allowed_actions=c.allowed_actions(),
            priority=c.priority,
            reason=c.reason,
            lines=[CaseLineIn(sku=ln.sku, quantity=ln.quantity) for ln in c.lines],
            needs_review=c.needs_review,
            policy=dict(c.policy),
            opened_at=c.opened_at,
            updated_at=c.updated_at,
            first_response_due_at=c.first_response_due_at,
            first_response_at=c.first_response_at,
            closed_at=c.closed_at,
            resolution=c.resolution,
            satisfaction=c.satisfaction,
            attachments=[AttachmentView.of(a) for a in found.attachments],
            refunds=[RefundView.of(r) for r in found.refunds],
            timeline=[TimelineEntryView.of(e) for e in found.timeline],
        )


class CaseSummary(BaseModel):
    case_id: str
    order_id: str
    customer_id: str
    case_type: str
    state: str
    priority: str
    needs_review: bool
    opened_at: datetime
    updated_at: datetime


# -- problems ------------------------------------------------------------------------------


def _case_not_found(case_id: str) -> Problem:
    return Problem(404, "case-not-found", "Unknown case", f"No case {case_id}.", case_id=case_id)


def _order_unknown(order_id: str) -> Problem:
    return Problem(
        404,
        "order-not-found",
        "Unknown order",
        f"Aftersales has not learned of order {order_id} from orders.events (yet).",
        order_id=order_id,
    )


def _illegal(exc: IllegalTransition) -> Problem:
    allowed_from = exc.allowed_from
    when = (
        f"allowed only when it is {' or '.join(allowed_from)}"
        if allowed_from
        else f"never allowed for a {exc.case_type} case"
    )
    return Problem(
        409,
        "illegal-transition",
        f"Case cannot {exc.action} now",
        f"Case {exc.case_id} ({exc.case_type}) is {exc.current}; {exc.action} is {when}.",
        case_id=exc.case_id,
        current_state=exc.current,
        allowed_actions=allowed_actions(exc.case_type, exc.current),
    )


def _invalid(exc: InvalidCase) -> Problem:
    return Problem(422, exc.slug, "Request cannot be applied", str(exc), **exc.details)


def _already_refunded(exc: AlreadyRefunded) -> Problem:
    first_sku, first_action, refund_id = exc.issued[0]
    return Problem(
        409,
        "already-refunded",
        "Already refunded",
        f"Case {exc.case_id}: SKU {first_sku} was already refunded for {first_action}"
        f" (refund {refund_id}); each line is refunded once per action.",
        case_id=exc.case_id,
        refunded=[{"sku": s, "action": a, "refund_id": r} for s, a, r in exc.issued],
    )


def _answer(
    status: int, body: dict[str, Any], replayed: bool, location: str | None
) -> JSONResponse:
    headers = {"Location": location} if status == 201 and location else {}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code=status, headers=headers)


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


# -- routes --------------------------------------------------------------------------------


def build_router(runtime: Runtime, sla: RuleConfig[CaseSlaBreached.Params]) -> APIRouter:
    router = APIRouter(tags=["cases"])
    settings = runtime.settings
    topics = runtime.topics
    sla_rule = CaseSlaBreached(sla)
    allowed_types = frozenset(t.lower() for t in settings.aftersales_attachment_types)
    max_bytes = settings.aftersales_attachment_max_bytes
    store = FilePath(settings.aftersales_attachments_dir)

    def staff(caller: Caller) -> Actor:
        return Actor("staff", caller.name)

    async def run(
        key: str | None, route: str, body: Any, operation: Any, location: Any = None
    ) -> JSONResponse:
        status, response, replayed = await run_once_per_key(
            runtime.pool, runtime.schema, key, route, body, operation
        )
        return _answer(status, response, replayed, location(response) if location else None)

    @router.post(
        "/cases",
        status_code=201,
        response_model=CaseView,
        responses={404: {"description": "The order is not known to after-sales"}},
    )
    async def open_case(
        request: OpenCaseRequest,
        caller: Caller = Depends(require_scope("cases:write")),
        idempotency_key: str | None = IdempotencyKey,
    ) -> JSONResponse:
        """Open a case on an order's lines (case.opened.v1). A return within the no-reason window
        is approved at once; after it, it needs a reason and waits for review (needs_review)."""

        async def open_(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            try:
                opened = await handlers.open_case(
                    uow,
                    topics,
                    request.to_command(),
                    Actor("customer", caller.name),
                    settings.aftersales_return_window_days,
                    sla_rule.first_response_s(request.case_type, request.priority),
                )
            except OrderUnknown as exc:
                raise _order_unknown(exc.order_id) from None
            except InvalidCase as exc:
                raise _invalid(exc) from None
            return 201, CaseView.of(opened).model_dump(mode="json")

        return await run(
            idempotency_key,
            "POST /cases",
            request.model_dump(mode="json"),
            open_,
            lambda body: f"/cases/{body['case_id']}",
        )

    @router.get("/cases/{case_id}", response_model=CaseView)
    async def get_case(
        case_id: str = CASE_ID, _: Caller = Depends(require_scope("cases:read"))
    ) -> CaseView:
        """A case with its state, allowed actions, policy outcome, evidence, refunds, timeline."""
        async with (
            runtime.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            try:
                return CaseView.of(await handlers.case_file(conn, case_id))
            except CaseNotFound:
                raise _case_not_found(case_id) from None

    @router.get("/cases", response_model=list[CaseSummary])
    async def find_cases(
        order_id: str | None = Query(default=None, max_length=64),
        state: str | None = Query(default=None, max_length=32),
        case_type: CaseTypeIn | None = Query(default=None, alias="type"),
        limit: int = Query(default=100, ge=1, le=500),
        _: Caller = Depends(require_scope("cases:read")),
    ) -> list[CaseSummary]:
        """Cases by order, state and type, newest first."""
        async with runtime.pool.acquire() as conn:
            found = await repository.find_cases(conn, order_id, state, case_type, limit)
        return [
            CaseSummary(
                case_id=c.case_id,
                order_id=c.order_id,
                customer_id=c.customer_id,
                case_type=c.case_type,
                state=c.state,
                priority=c.priority,
                needs_review=c.needs_review,
                opened_at=c.opened_at,
                updated_at=c.updated_at,
            )
            for c in found
        ]

    @router.post("/cases/{case_id}/actions", response_model=CaseView)
    async def act(
        request: CaseActionRequest,
        case_id: str = CASE_ID,
        caller: Caller = Depends(require_scope("cases:write")),
        idempotency_key: str | None = IdempotencyKey,
    ) -> JSONResponse:
        """Move the case along its flow (case.updated.v1; case.closed.v1 when it closes). An
        action its current state does not allow is a 409 naming that state."""

        async def act_(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            try:
                moved = await handlers.act_on_case(
                    uow,
                    topics,
                    case_id,
                    request.action,
                    staff(caller),
                    request.note,
                    request.resolution,
                    request.satisfaction,
                )
            except CaseNotFound:
                raise _case_not_found(case_id) from None
            except IllegalTransition as exc:
                raise _illegal(exc) from None
            except InvalidCase as exc:
                raise _invalid(exc) from None
            return 200, CaseView.of(moved).model_dump(mode="json")

        return await run(
            idempotency_key, f"POST /cases/{case_id}/actions", request.model_dump(mode="json"), act_
        )

    @router.post("/cases/{case_id}/comments", response_model=CaseView)
    async def comment(
        request: CommentRequest,
        case_id: str = CASE_ID,
        caller: Caller = Depends(require_scope("cases:write")),
        idempotency_key: str | None = IdempotencyKey,
    ) -> JSONResponse:
        """An agent's comment: counts as the case's first response (case.updated.v1)."""

        async def comment_(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            try:
                found = await handlers.comment_on_case(
                    uow, topics, case_id, staff(caller), request.note
                )
            except CaseNotFound:
                raise _case_not_found(case_id) from None
            except IllegalTransition as exc:
                raise _illegal(exc) from None
            return 200, CaseView.of(found).model_dump(mode="json")

        return await run(
            idempotency_key,
            f"POST /cases/{case_id}/comments",
            request.model_dump(mode="json"),
            comment_,
        )

    def check_limits(content_type: str, size: int) -> None:
        if content_type not in allowed_types:
            raise Problem(
                415,
                "unsupported-attachment-type",
                "Attachment type not accepted",
                f"{content_type or 'no content type'} is not accepted; send one of"
                f" {', '.join(sorted(allowed_types))}.",
                content_type=content_type,
                accepted=sorted(allowed_types),
            )
        if size > max_bytes:
            raise Problem(
                413,
                "attachment-too-large",
                "Attachment too large",
                f"{size} bytes is above the limit of {max_bytes} bytes per attachment.",
                size_bytes=size,
                max_bytes=max_bytes,
            )

    async def attach(
        attachment: Attachment, content: bytes | None = None
    ) -> tuple[Attachment, bool]:
        async with UnitOfWork(runtime.pool, runtime.schema) as uow:
            try:
                kept, added = await handlers.attach_evidence(uow, attachment, content)
            except CaseNotFound:
                raise _case_not_found(attachment.case_id) from None
            await uow.commit()
        return kept, added

    def attached(attachment: Attachment, added: bool) -> JSONResponse:
        """201 for new evidence; 200 with the attachment already there for the same content."""
        return JSONResponse(
            AttachmentView.of(attachment).model_dump(mode="json"),
            status_code=201 if added else 200,
            headers={"Location": f"/cases/{attachment.case_id}"},
        )

    @router.post(
        "/cases/{case_id}/attachments",
        status_code=201,
        response_model=AttachmentView,
        responses={415: {"description": "Attachment type not accepted"}},
        openapi_extra={
            "requestBody": {
                "content": {
                    t: {"schema": {"type": "string", "format": "binary"}}
                    for t in sorted(allowed_types)
                }
            }
        },
    )
    async def upload_attachment(
        request: Request,
        case_id: str = CASE_ID,
        filename: str = Query(min_length=1, max_length=255),
        caller: Caller = Depends(require_scope("cases:write")),
    ) -> JSONResponse:
        """Evidence as the raw request body (its Content-Type is the file's type), stored in the
        database; 415 for a type not accepted, 413 above the size limit."""
        content_type = _media_type(request.headers.get("content-type"))
        declared = request.headers.get("content-length")
        check_limits(content_type, int(declared) if declared and declared.isdigit() else 0)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            check_limits(content_type, len(body))  # a body longer than it said is cut short
        digest = hashlib.sha256(body).hexdigest()
        async with runtime.pool.acquire() as conn:
            if not await conn.fetchval("SELECT 1 FROM cases WHERE case_id = $1", case_id):
                raise _case_not_found(case_id)
            if existing := await repository.attachment_with(conn, case_id, digest):
                return attached(existing, added=False)  # a retried upload: stored already
        attachment_id = new_id("att")
        return attached(
            *await attach(
                Attachment(
                    attachment_id=attachment_id,
                    case_id=case_id,
                    filename=filename,
                    content_type=content_type,
                    size_bytes=len(body),
                    sha256=digest,
                    storage="database",
                    reference=attachment_id,
                    uploaded_by=caller.name,
                    uploaded_at=datetime.now(UTC),
                ),
                bytes(body),
            )
        )

    @router.get(
        "/cases/{case_id}/attachments/{attachment_id}",
        response_class=Response,
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    async def download_attachment(
        case_id: str = CASE_ID,
        attachment_id: str = Path(min_length=1, max_length=64),
        _: Caller = Depends(require_scope("cases:read")),
    ) -> Response:
        """The evidence's bytes, with its type and file name; a referenced one redirects to its
        URL; 404 for an attachment not on this case."""
        async with runtime.pool.acquire() as conn:
            found = await repository.attachment_content(conn, case_id, attachment_id)
        if found is None:
            raise Problem(
                404,
                "attachment-not-found",
                "Unknown attachment",
                f"Case {case_id} has no attachment {attachment_id}.",
                case_id=case_id,
                attachment_id=attachment_id,
            )
        attachment, content = found
        if attachment.storage == "url":
            return RedirectResponse(attachment.reference, status_code=307)
        if content is None:  # an upload from before evidence moved into the database
            content = await asyncio.to_thread((store / attachment.reference).read_bytes)
        disposition = f"attachment; filename*=UTF-8''{quote(attachment.filename)}"
        return Response(
            content,
            media_type=attachment.content_type,
            headers={"Content-Disposition": disposition, "ETag": f'"{attachment.sha256}"'},
        )

    @router.post(
        "/cases/{case_id}/attachments/references",
        status_code=201,
        response_model=AttachmentView,
        responses={415: {"description": "Attachment type not accepted"}},
    )
    async def reference_attachment(
        request: AttachmentReferenceRequest,
        case_id: str = CASE_ID,
        caller: Caller = Depends(require_scope("cases:write")),
    ) -> JSONResponse:
        """Evidence stored elsewhere: its metadata and an https URL (same type and size limits)."""
        check_limits(_media_type(request.content_type), request.size_bytes)
        return attached(
            *await attach(
                Attachment(
                    attachment_id=new_id("att"),
                    case_id=case_id,
                    filename=request.filename,
                    content_type=_media_type(request.content_type),
                    size_bytes=request.size_bytes,
                    sha256=request.sha256,
                    storage="url",
                    reference=request.url,
                    uploaded_by=caller.name,
                    uploaded_at=datetime.now(UTC),
                )
            )
        )

    @router.post("/cases/{case_id}/refunds", status_code=201, response_model=CaseView)
    async def refund(
        request: RefundRequest,
        case_id: str = CASE_ID,
        caller: Caller = Depends(require_scope("refunds:write")),
        idempotency_key: str | None = IdempotencyKey,
    ) -> JSONResponse:
        """Refund lines of the case's order (refund.issued.v1 and the customer's notification).
        422 when a line is above what was paid for it minus what was refunded (naming the line,
        the cap and what is left); 409 when a line was already refunded for that action."""

        async def refund_(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
            try:
                _, found = await handlers.issue_refund(
                    uow,
                    topics,
                    case_id,
                    [RefundLine(x.sku, x.quantity, x.amount, x.action) for x in request.lines],
                    request.reason,
                    staff(caller),
                )
            except CaseNotFound:
                raise _case_not_found(case_id) from None
            except OrderUnknown as exc:
                raise _order_unknown(exc.order_id) from None
            except IllegalTransition as exc:
                raise _illegal(exc) from None
            except InvalidCase as exc:
                raise _invalid(exc) from None
            except AlreadyRefunded as exc:
                raise _already_refunded(exc) from None
            return 201, CaseView.of(found).model_dump(mode="json")

        return await run(
            idempotency_key,
            f"POST /cases/{case_id}/refunds",
            request.model_dump(mode="json"),
            refund_,
            lambda body: f"/cases/{body['case_id']}",
        )

    return router
