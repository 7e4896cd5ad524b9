"""HTTP API of the logistics service: the carriers' signed scan webhook, shipments with their
scan history, and reassignment to another carrier."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from orderguard.services.logistics import handlers, repository
from orderguard.services.logistics.domain import SCAN_CLOCK_SKEW, Shipment, scan_from_the_future
from orderguard.services.logistics.handlers import ShipmentWithHistory, WebhookReplayed
from orderguard.services.logistics.settings import LogisticsSettings
from orderguard.services.logistics.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureRejected,
    verify,
)
from orderguard.shared import metrics
from orderguard.shared.errors import Invalid
from orderguard.shared.events.carriers import CarrierScan
from orderguard.shared.events.logistics import ExceptionReason, ScanStatus
from orderguard.shared.http import Caller, Problem, require_scope
from orderguard.shared.http.deps import RuntimeDep, Snapshot, Writes
from orderguard.shared.http.inputs import IDENTIFIER, AwareInstant, Text
from orderguard.shared.logging import get_logger
from orderguard.shared.topics import Topics
from orderguard.shared.uow import UnitOfWork

log = get_logger(__name__)

Carrier = Annotated[str, Path(min_length=1, max_length=64, pattern=IDENTIFIER)]
ShipmentId = Annotated[Text, Path(min_length=1, max_length=64)]
OrderId = Annotated[Text, Path(min_length=1, max_length=64)]
MAX_WEBHOOK_BODY = 64 * 1024


class WebhookScan(BaseModel):
    """One scan as a carrier POSTs it; the carrier is the one in the path."""

    model_config = ConfigDict(extra="forbid")

    tracking_number: Text = Field(min_length=1, max_length=64)
    scan_id: Text = Field(min_length=1, max_length=128)
    status: ScanStatus
    location: Text | None = Field(default=None, max_length=200)
    exception_reason: ExceptionReason | None = None
    scanned_at: AwareInstant = Field(description="With a UTC offset")


class ReassignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    carrier: str = Field(min_length=1, max_length=64, pattern=IDENTIFIER)
    tracking_number: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=IDENTIFIER,
        description="The new carrier's number; omitted: one is assigned",
    )
    reason: Text = Field(min_length=1, max_length=500)


class ScanView(BaseModel):
    carrier: str
    scan_id: str
    tracking_number: str
    status: str
    location: str | None
    exception_reason: str | None
    scanned_at: datetime
    status_changed: bool = Field(description="False: late, repeated or an exception")
    received_at: datetime


class TrackingView(BaseModel):
    carrier: str
    tracking_number: str
    assigned_at: datetime


class HistoryView(BaseModel):
    at: datetime
    what: str
    details: dict[str, Any]


class ShipmentSummary(BaseModel):
    """A shipment as lists show it: no scans, no contact."""

    shipment_id: str
    order_id: str
    warehouse: str
    carrier: str
    tracking_number: str
    status: str
    promised_delivery_by: datetime
    created_at: datetime
    dispatched_at: datetime | None
    delivered_at: datetime | None
    last_scan_at: datetime | None
    last_exception: str | None
    compensated_for: str | None

    @classmethod
    def of_shipment(cls, s: Shipment) -> ShipmentSummary:
        return cls(**{name: getattr(s, name) for name in ShipmentSummary.model_fields})


class ShipmentView(ShipmentSummary):
    """A shipment with every tracking number it had, its scans and its history."""

    tracking: list[TrackingView]
    scans: list[ScanView]
    history: list[HistoryView]

    @classmethod
    def of(cls, found: ShipmentWithHistory) -> ShipmentView:
        return cls(
            **ShipmentSummary.of_shipment(found.shipment).model_dump(),
            tracking=[TrackingView(**dict(row)) for row in found.tracking],
            scans=[ScanView(**dict(row)) for row in found.scans],
            history=[HistoryView(**dict(row)) for row in found.history],
        )


class OrderShipmentsView(BaseModel):
    order_id: str
    shipments: list[ShipmentView]


class ScanAccepted(BaseModel):
    carrier: str
    scan_id: str
    tracking_number: str
    status: str = "accepted"


def _invalid(exc: ValidationError) -> RequestValidationError:
    """The scan's errors, rendered like any other body's (the body is parsed here, after the
    signature is checked, not by FastAPI)."""
    return RequestValidationError(
        [{**err, "loc": ("body", *err.get("loc", ()))} for err in exc.errors()]
    )


@dataclass(frozen=True)
class Carriers:
    """What the scan webhook needs: the carriers' secrets and the clock tolerance."""

    topics: Topics
    secrets: Mapping[str, SecretStr]
    tolerance_s: float


async def carriers(runtime: RuntimeDep) -> Carriers:
    settings = runtime.settings.section(LogisticsSettings)
    return Carriers(
        runtime.topics, settings.carrier_secrets, settings.carrier_signature_tolerance_s
    )


async def topics_of(runtime: RuntimeDep) -> Topics:
    return runtime.topics


CarriersDep = Annotated[Carriers, Depends(carriers)]
TopicsDep = Annotated[Topics, Depends(topics_of)]
READ = [Depends(require_scope("logistics:read"))]

router = APIRouter(tags=["logistics"])


def _verified(request: Request, body: bytes, carrier: str, known: Carriers) -> str:
    """The request's signature, once checked against the carrier's secret; 401 otherwise."""
    secret = known.secrets.get(carrier)
    try:
        return verify(
            secret.get_secret_value() if secret is not None else None,
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER),
            body,
            datetime.now(UTC),
            known.tolerance_s,
        )
    except SignatureRejected as exc:
        log.info("carrier scan refused", carrier=carrier, reason=exc.slug)
        metrics.CARRIER_WEBHOOK_SCANS.labels("unauthenticated").inc()
        raise Problem(
            401, exc.slug, "Scan not authenticated", exc.reason, carrier=carrier
        ) from None


def _scan_of(body: bytes, carrier: str) -> CarrierScan:
    """The posted scan, validated, and not dated ahead of our clock; 422 otherwise."""
    try:
        posted = WebhookScan.model_validate(orjson.loads(body))
        scan = CarrierScan(carrier=carrier, **posted.model_dump())
    except orjson.JSONDecodeError:
        metrics.CARRIER_WEBHOOK_SCANS.labels("invalid").inc()
        raise Problem(422, "validation", "Scan is invalid", "The body is not JSON.") from None
    except ValidationError as exc:
        metrics.CARRIER_WEBHOOK_SCANS.labels("invalid").inc()
        raise _invalid(exc) from None
    if scan_from_the_future(scan.scanned_at, datetime.now(UTC)):
        metrics.CARRIER_WEBHOOK_SCANS.labels("invalid").inc()
        raise Invalid(
            f"scanned_at {scan.scanned_at.isoformat()} is ahead of the server's clock by more"
            f" than {SCAN_CLOCK_SKEW.total_seconds():g}s.",
            slug="scan-in-the-future",
            title="Scan dated in the future",
            carrier=carrier,
            scan_id=scan.scan_id,
        )
    return scan


@router.post(
    "/carriers/{carrier}/scans",
    status_code=202,
    response_model=ScanAccepted,
    responses={401: {"description": "Signature or timestamp missing, invalid or stale"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": WebhookScan.model_json_schema()}},
        }
    },
)
async def receive_scan(
    request: Request, carrier: Carrier, known: CarriersDep, writes: Writes
) -> JSONResponse:
    """A carrier's scan, signed: `X-Carrier-Timestamp` (unix seconds) and
    `X-Carrier-Signature` = hex HMAC-SHA256 of "<timestamp>.<body>" with the carrier's
    secret. Accepted once (401 unsigned or stale, 409 replayed, 422 invalid), then applied
    from `carriers.scans` like a scan the carrier published there."""
    body = await request.body()
    if len(body) > MAX_WEBHOOK_BODY:
        raise Problem(413, "body-too-large", "Scan too large", f"At most {MAX_WEBHOOK_BODY} bytes.")
    signature = _verified(request, body, carrier, known)
    scan = _scan_of(body, carrier)
    async with writes.unit_of_work() as uow:
        owner = await repository.tracking_owner(uow.conn, carrier, scan.tracking_number)
        if owner is None:
            metrics.CARRIER_WEBHOOK_SCANS.labels("invalid").inc()
            raise Invalid(
                f"No shipment has {carrier} tracking number {scan.tracking_number}.",
                slug="tracking-unknown",
                title="Unknown tracking number",
                carrier=carrier,
                tracking_number=scan.tracking_number,
            )
        try:
            await handlers.accept_webhook_scan(uow, known.topics, scan, signature)
        except WebhookReplayed as exc:
            metrics.CARRIER_WEBHOOK_SCANS.labels("replayed").inc()
            exc.details.update(carrier=carrier, scan_id=scan.scan_id)
            raise
        await uow.commit()
    metrics.CARRIER_WEBHOOK_SCANS.labels("accepted").inc()
    accepted = ScanAccepted(
        carrier=carrier, scan_id=scan.scan_id, tracking_number=scan.tracking_number
    )
    return JSONResponse(accepted.model_dump(), status_code=202)


@router.get("/shipments", response_model=list[ShipmentSummary], dependencies=READ)
async def find_shipments(
    conn: Snapshot,
    which: Annotated[
        Literal["stalled", "overdue", "exception", "compensated"],
        Query(
            alias="list",
            description="stalled: in transit without a scan for silent_hours; overdue: not"
            " delivered by the promised time; exception: undelivered after an exception scan;"
            " compensated: the customer was given a delay compensation",
        ),
    ],
    silent_hours: Annotated[float, Query(gt=0, le=24 * 365)] = 24.0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ShipmentSummary]:
    """One list of shipments for the people who chase them, most urgent first."""
    found = await repository.find_shipments(
        conn, which, datetime.now(UTC), silent_hours * 3600, limit
    )
    return [ShipmentSummary.of_shipment(s) for s in found]


@router.get("/shipments/{shipment_id}", response_model=ShipmentView, dependencies=READ)
async def get_shipment(shipment_id: ShipmentId, conn: Snapshot) -> ShipmentView:
    """A shipment: status, carrier and every tracking number it had, scans, history."""
    return ShipmentView.of(await handlers.shipment_with_history(conn, shipment_id))


@router.get("/orders/{order_id}/shipments", response_model=OrderShipmentsView, dependencies=READ)
async def shipments_of_order(order_id: OrderId, conn: Snapshot) -> OrderShipmentsView:
    """The order's shipments (empty until the order is paid), with their scans."""
    found = await handlers.shipments_of_order(conn, order_id)
    return OrderShipmentsView(order_id=order_id, shipments=[ShipmentView.of(s) for s in found])


@router.post("/shipments/{shipment_id}/reassign", response_model=ShipmentView)
async def reassign(
    request: ReassignRequest,
    shipment_id: ShipmentId,
    caller: Annotated[Caller, Depends(require_scope("logistics:write"))],
    topics: TopicsDep,
    writes: Writes,
) -> JSONResponse:
    """Give the shipment to another carrier with a new tracking number (published as
    shipment.reassigned.v1); history, scans and the stall clock carry on."""

    async def run(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        await handlers.reassign(
            uow,
            topics,
            shipment_id,
            request.carrier,
            request.tracking_number,
            request.reason,
            caller.name,
            caller.person_name,
        )
        found = await handlers.shipment_with_history(uow.conn, shipment_id)
        return 200, ShipmentView.of(found).model_dump(mode="json")

    return await writes.once(request, run)
