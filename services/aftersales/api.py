"""HTTP API of the aftersales service: cases, their flow, evidence and refunds."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from orderguard.services.aftersales import handlers, repository
from orderguard.services.aftersales.domain import FLOWS, CaseLine, RefundLine, new_id
from orderguard.services.aftersales.handlers import CaseFile, CaseNotFound, OpenCase
from orderguard.services.aftersales.repository import Attachment, Refund
from orderguard.services.aftersales.rules import CaseSlaBreached
from orderguard.services.aftersales.settings import AftersalesSettings
from orderguard.shared.actor import Actor
from orderguard.shared.detection.config import in_force
from orderguard.shared.http import Caller, Problem, require_scope
from orderguard.shared.http.deps import Conn, RuntimeDep, Snapshot, WriteContext, Writes, actor_of
from orderguard.shared.http.inputs import IDENTIFIER, ByteSize, Text
from orderguard.shared.http.views import TimelineEntryView
from orderguard.shared.topics import Topics
from orderguard.shared.uow import UnitOfWork

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

    order_id: Text = Field(min_length=1, max_length=64)
    case_type: CaseTypeIn
    lines: list[CaseLineIn] = Field(default_factory=list, max_length=200)
    reason: Text | None = Field(
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
    note: Text | None = Field(default=None, max_length=2000)
    resolution: Text | None = Field(default=None, max_length=2000)
    satisfaction: int | None = Field(default=None, ge=1, le=5, description="1-5, with score")


class CommentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Text = Field(min_length=1, max_length=2000)


class AttachmentReferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: Text = Field(min_length=1, max_length=255)
    content_type: Text = Field(min_length=1, max_length=100)
    size_bytes: ByteSize
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    url: Text = Field(pattern=r"^https://\S+$", max_length=2000)


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
    reason: Text = Field(min_length=1, max_length=1000)


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
    stages: list[str] = Field(description="The states of this case type's flow, in order")
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
            stages=list(FLOWS[c.case_type]),
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
    first_response_due_at: datetime | None
    first_response_at: datetime | None


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class CaseDesk:
    """What the case routes need from the service: its topics, the first-response SLA, the
    return window and the attachment limits."""

    topics: Topics
    sla: CaseSlaBreached
    return_window_days: int
    attachment_types: frozenset[str]
    attachment_max_bytes: int
    attachments: FilePath

    def check_attachment(self, content_type: str, size: int) -> None:
        if content_type not in self.attachment_types:
            raise Problem(
                415,
                "unsupported-attachment-type",
                "Attachment type not accepted",
                f"{content_type or 'no content type'} is not accepted; send one of"
                f" {', '.join(sorted(self.attachment_types))}.",
                content_type=content_type,
                accepted=sorted(self.attachment_types),
            )
        if size > self.attachment_max_bytes:
            raise Problem(
                413,
                "attachment-too-large",
                "Attachment too large",
                f"{size} bytes is above the limit of {self.attachment_max_bytes} bytes per"
                " attachment.",
                size_bytes=size,
                max_bytes=self.attachment_max_bytes,
            )


async def case_desk(runtime: RuntimeDep) -> CaseDesk:
    settings = runtime.settings.section(AftersalesSettings)

    def build() -> CaseDesk:
        return CaseDesk(
            topics=runtime.topics,
            sla=CaseSlaBreached(in_force(runtime).rule(CaseSlaBreached.name)),
            return_window_days=settings.return_window_days,
            attachment_types=frozenset(t.lower() for t in settings.attachment_types),
            attachment_max_bytes=settings.attachment_max_bytes,
            attachments=FilePath(settings.attachments_dir),
        )

    return runtime.once("aftersales.case_desk", build)


Desk = Annotated[CaseDesk, Depends(case_desk)]
CaseId = Annotated[Text, Path(min_length=1, max_length=64)]
CaseWriter = Annotated[Caller, Depends(require_scope("cases:write"))]
READ = [Depends(require_scope("cases:read"))]
# The types documented; the deployment's own list (settings) is what is enforced.
DOCUMENTED_TYPES = sorted(
    AftersalesSettings.model_fields["attachment_types"].get_default(call_default_factory=True)
)


def staff(caller: Caller) -> Actor:
    """A person the console acts for (with their display name), else the staff's key."""
    if caller.person is not None:
        return actor_of(caller)
    return Actor("staff", caller.name)


def _case_location(body: dict[str, Any]) -> str:
    return f"/cases/{body['case_id']}"


def _answer(found: CaseFile, status: int = 200) -> tuple[int, dict[str, Any]]:
    return status, CaseView.of(found).model_dump(mode="json")


router = APIRouter(tags=["cases"])


@router.post(
    "/cases",
    status_code=201,
    response_model=CaseView,
    responses={404: {"description": "The order is not known to after-sales"}},
)
async def open_case(
    request: OpenCaseRequest, caller: CaseWriter, desk: Desk, writes: Writes
) -> JSONResponse:
    """Open a case on an order's lines (case.opened.v1). A return within the no-reason window
    is approved at once; after it, it needs a reason and waits for review (needs_review)."""

    async def open_(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        opened = await handlers.open_case(
            uow,
            desk.topics,
            request.to_command(),
            Actor("customer", caller.name),
            desk.return_window_days,
            desk.sla.first_response_s(request.case_type, request.priority),
        )
        return _answer(opened, 201)

    return await writes.once(request, open_, _case_location)


@router.get("/cases/{case_id}", response_model=CaseView, dependencies=READ)
async def get_case(case_id: CaseId, conn: Snapshot) -> CaseView:
    """A case with its state, allowed actions, policy outcome, evidence, refunds, timeline."""
    return CaseView.of(await handlers.case_file(conn, case_id))


@router.get("/cases", response_model=list[CaseSummary], dependencies=READ)
async def find_cases(
    conn: Conn,
    order_id: Annotated[Text | None, Query(max_length=64)] = None,
    state: Annotated[Text | None, Query(max_length=32)] = None,
    case_type: Annotated[CaseTypeIn | None, Query(alias="type")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    order: Annotated[
        Literal["newest", "sla_due"],
        Query(description="sla_due: open cases first, by first-response due time"),
    ] = "newest",
) -> list[CaseSummary]:
    """Cases by order, state and type, newest first (or by SLA due)."""
    found = await repository.find_cases(conn, order_id, state, case_type, limit, order)
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
            first_response_due_at=c.first_response_due_at,
            first_response_at=c.first_response_at,
        )
        for c in found
    ]


@router.post("/cases/{case_id}/actions", response_model=CaseView)
async def act(
    request: CaseActionRequest, case_id: CaseId, caller: CaseWriter, desk: Desk, writes: Writes
) -> JSONResponse:
    """Move the case along its flow (case.updated.v1; case.closed.v1 when it closes). An
    action its current state does not allow is a 409 naming that state."""

    async def act_(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        moved = await handlers.act_on_case(
            uow,
            desk.topics,
            case_id,
            request.action,
            staff(caller),
            request.note,
            request.resolution,
            request.satisfaction,
        )
        return _answer(moved)

    return await writes.once(request, act_)


@router.post("/cases/{case_id}/comments", response_model=CaseView)
async def comment(
    request: CommentRequest, case_id: CaseId, caller: CaseWriter, desk: Desk, writes: Writes
) -> JSONResponse:
    """An agent's comment: counts as the case's first response (case.updated.v1)."""

    async def comment_(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        return _answer(
            await handlers.comment_on_case(uow, desk.topics, case_id, staff(caller), request.note)
        )

    return await writes.once(request, comment_)


async def _attach(
    writes: WriteContext, caller: Caller, attachment: Attachment, content: bytes | None = None
) -> tuple[Attachment, bool]:
    async with writes.unit_of_work() as uow:
        kept, added = await handlers.attach_evidence(uow, attachment, content, staff(caller))
        await uow.commit()
    return kept, added


def _attached(attachment: Attachment, added: bool) -> JSONResponse:
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
                t: {"schema": {"type": "string", "format": "binary"}} for t in DOCUMENTED_TYPES
            }
        }
    },
)
async def upload_attachment(
    request: Request,
    case_id: CaseId,
    filename: Annotated[Text, Query(min_length=1, max_length=255)],
    caller: CaseWriter,
    desk: Desk,
    runtime: RuntimeDep,
    writes: Writes,
) -> JSONResponse:
    """Evidence as the raw request body (its Content-Type is the file's type), stored in the
    database; 415 for a type not accepted, 413 above the size limit."""
    content_type = _media_type(request.headers.get("content-type"))
    declared = request.headers.get("content-length")
    desk.check_attachment(content_type, int(declared) if declared and declared.isdigit() else 0)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        desk.check_attachment(content_type, len(body))  # a body longer than it said is cut short
    digest = hashlib.sha256(body).hexdigest()
    # Not a Conn dependency: a second connection is taken for the write below.
    async with runtime.pool.acquire() as conn:
        if not await conn.fetchval("SELECT 1 FROM cases WHERE case_id = $1", case_id):
            raise CaseNotFound(case_id)
        if existing := await repository.attachment_with(conn, case_id, digest):
            return _attached(existing, added=False)  # a retried upload: stored already
    attachment_id = new_id("att")
    kept, added = await _attach(
        writes,
        caller,
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
    return _attached(kept, added)


@router.get(
    "/cases/{case_id}/attachments/{attachment_id}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
    dependencies=READ,
)
async def download_attachment(
    case_id: CaseId,
    attachment_id: Annotated[Text, Path(min_length=1, max_length=64)],
    desk: Desk,
    conn: Conn,
) -> Response:
    """The evidence's bytes, with its type and file name; a referenced one redirects to its
    URL; 404 for an attachment not on this case."""
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
        content = await asyncio.to_thread((desk.attachments / attachment.reference).read_bytes)
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
    case_id: CaseId,
    caller: CaseWriter,
    desk: Desk,
    writes: Writes,
) -> JSONResponse:
    """Evidence stored elsewhere: its metadata and an https URL (same type and size limits)."""
    desk.check_attachment(_media_type(request.content_type), request.size_bytes)
    return _attached(
        *await _attach(
            writes,
            caller,
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
            ),
        )
    )


@router.post("/cases/{case_id}/refunds", status_code=201, response_model=CaseView)
async def refund(
    request: RefundRequest,
    case_id: CaseId,
    caller: Annotated[Caller, Depends(require_scope("refunds:write"))],
    desk: Desk,
    writes: Writes,
) -> JSONResponse:
    """Refund lines of the case's order (refund.issued.v1 and the customer's notification).
    422 when a line is above what was paid for it minus what was refunded (naming the line,
    the cap and what is left); 409 when a line was already refunded for that action."""

    async def refund_(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        _, found = await handlers.issue_refund(
            uow,
            desk.topics,
            case_id,
            [RefundLine(x.sku, x.quantity, x.amount, x.action) for x in request.lines],
            request.reason,
            staff(caller),
        )
        return _answer(found, 201)

    return await writes.once(request, refund_, _case_location)
