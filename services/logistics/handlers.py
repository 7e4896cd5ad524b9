"""Logistics use cases, each inside a unit of work: create the shipment of a paid order, accept a
signed webhook scan, apply carrier scans, reassign a carrier, compensate a delay.

Every change is published on `logistics.events` (key: shipment id) through the outbox, in the
same transaction as the change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from orderguard.services.logistics import repository
from orderguard.services.logistics.domain import (
    DelayReason,
    Scan,
    Shipment,
    choose_carrier,
    delay_notice,
    scan_from_the_future,
    shipment_id_for,
    tracking_number_for,
)
from orderguard.services.logistics.settings import DelayCompensation
from orderguard.shared.engine import Event, RejectEvent
from orderguard.shared.envelope import Envelope
from orderguard.shared.errors import Conflict, NotFound
from orderguard.shared.events.carriers import CarrierScan
from orderguard.shared.events.orders import OrderPaid
from orderguard.shared.logging import get_logger
from orderguard.shared.topics import Topics
from orderguard.shared.uow import UnitOfWork

SOURCE = "/orderguard/logistics"
log = get_logger(__name__)


class ShipmentNotFound(NotFound):
    def __init__(self, shipment_id: str) -> None:
        super().__init__("shipment", shipment_id)


class TrackingTaken(Conflict):
    """The new tracking number already belongs to a shipment of that carrier."""

    slug = "tracking-taken"
    title = "Tracking number in use"


class WebhookReplayed(Conflict):
    def __init__(self, what: str) -> None:
        super().__init__(
            f"This {'scan id' if what == 'scan' else 'signature'} was accepted before;"
            " a scan is applied once.",
            slug="scan-replayed",
            title="Scan already received",
        )
        self.what = what  # "scan" or "signature"


@dataclass(frozen=True)
class CarrierRule:
    """Which carrier a new shipment gets: its warehouse's, else the default."""

    default: str
    by_warehouse: Mapping[str, str]

    def carrier_for(self, warehouse: str) -> str:
        return choose_carrier(warehouse, self.by_warehouse, self.default)


def _publish(
    uow: UnitOfWork,
    topic: str,
    subject: str,
    data: BaseModel,
    cause: Envelope | None,
    time: datetime | None = None,
) -> None:
    uow.publish(topic, data, source=SOURCE, subject=subject, cause=cause, time=time)


# -- order.paid -> shipment ---------------------------------------------------------------------


async def create_shipments(
    uow: UnitOfWork, events: Sequence[Event], topics: Topics, carriers: CarrierRule
) -> None:
    """One shipment per paid order: its id derives from the order's, so a redelivered or
    republished order.paid finds the shipment already there and changes nothing."""
    paid = [(event, event.data) for event in events if isinstance(event.data, OrderPaid)]
    known = await repository.lock_shipments(
        uow.conn, {shipment_id_for(data.order_id) for _, data in paid}
    )
    created: list[Shipment] = []
    for event, data in paid:
        shipment_id = shipment_id_for(data.order_id)
        if shipment_id in known:
            continue
        shipment, shipment_created = Shipment.create(
            order_id=data.order_id,
            warehouse=data.warehouse,
            carrier=carriers.carrier_for(data.warehouse),
            promised_delivery_by=data.promised_delivery_by,
            customer_id=data.customer_id,
            phone=data.phone,
            now=uow.now,
        )
        known[shipment_id] = shipment
        created.append(shipment)
        _publish(uow, topics.logistics, shipment_id, shipment_created, event.envelope)
    if not created:
        return
    await repository.save_shipments(uow.conn, created)
    await repository.add_tracking(
        uow.conn, [(s.carrier, s.tracking_number, s.shipment_id, s.created_at) for s in created]
    )
    await repository.add_history(
        uow.conn,
        [
            (
                s.shipment_id,
                s.created_at,
                "created",
                {"carrier": s.carrier, "tracking_number": s.tracking_number},
            )
            for s in created
        ],
    )


# -- carrier scans ------------------------------------------------------------------------------


async def accept_webhook_scan(
    uow: UnitOfWork, topics: Topics, scan: CarrierScan, signature: str
) -> None:
    """Record the signed request and put its scan on `carriers.scans`, once: a signature or
    scan id accepted before is a replay (WebhookReplayed)."""
    seen = await repository.webhook_receipt_seen(uow.conn, scan.carrier, scan.scan_id, signature)
    if seen is not None:
        raise WebhookReplayed(seen)
    try:
        await repository.add_webhook_receipt(uow.conn, scan.carrier, scan.scan_id, signature)
    except asyncpg.UniqueViolationError:
        raise WebhookReplayed("scan") from None  # a twin request committed first
    _publish(uow, topics.carrier_scans, scan.tracking_number, scan, None)


def _scan(data: CarrierScan) -> Scan:
    return Scan(
        carrier=data.carrier,
        tracking_number=data.tracking_number,
        scan_id=data.scan_id,
        status=data.status,
        scanned_at=data.scanned_at,
        location=data.location,
        exception_reason=data.exception_reason,
    )


async def apply_scans(uow: UnitOfWork, events: Sequence[Event], topics: Topics) -> None:
    """Apply each scan once per (carrier, scan id), whatever path and event id it came with.

    A scan for a tracking number nobody assigned can never apply: it is rejected (dead-lettered
    with the reason, re-drivable once the shipment exists)."""
    scans = [(event, _scan(event.data)) for event in events if isinstance(event.data, CarrierScan)]
    owners = await repository.shipments_by_tracking(
        uow.conn, {(scan.carrier, scan.tracking_number) for _, scan in scans}
    )
    for _, scan in scans:
        if (scan.carrier, scan.tracking_number) not in owners:
            raise RejectEvent(
                f"no shipment has tracking number {scan.tracking_number} of carrier {scan.carrier}"
            )
        if scan_from_the_future(scan.scanned_at, uow.now):
            raise RejectEvent(
                f"scan {scan.scan_id} of {scan.carrier} is dated {scan.scanned_at.isoformat()},"
                " in the future: a carrier clock off would move every shipment's detector clock"
            )
    shipments = await repository.lock_shipments(uow.conn, set(owners.values()))
    done = await repository.applied_scans(uow.conn, {(s.carrier, s.scan_id) for _, s in scans})
    applied: list[tuple[str, Scan, bool]] = []
    changed: dict[str, Shipment] = {}
    for event, scan in scans:
        if (scan.carrier, scan.scan_id) in done:
            continue
        done.add((scan.carrier, scan.scan_id))
        shipment_id = owners[(scan.carrier, scan.tracking_number)]
        outcome = shipments[shipment_id].apply_scan(scan)
        shipments[shipment_id] = changed[shipment_id] = outcome.shipment
        applied.append((shipment_id, scan, outcome.status_changed))
        for data in outcome.events:
            # Event time is the carrier's scan time: the detectors' clocks run on it.
            _publish(uow, topics.logistics, shipment_id, data, event.envelope, time=scan.scanned_at)
    if applied:
        await repository.add_scans(uow.conn, applied)
        await repository.save_shipments(uow.conn, changed.values())


# -- reassignment -------------------------------------------------------------------------------


async def reassign(
    uow: UnitOfWork,
    topics: Topics,
    shipment_id: str,
    carrier: str,
    tracking_number: str | None,
    reason: str,
    actor: str,
    actor_name: str | None = None,
) -> Shipment:
    """Give the shipment to another carrier (ShipmentDelivered once delivered). The old
    tracking number stays known, so its late scans still land in the history. `actor_name`:
    the acting person's display name, kept in the history beside `by`."""
    found = await repository.lock_shipments(uow.conn, [shipment_id])
    if shipment_id not in found:
        raise ShipmentNotFound(shipment_id)
    before = found[shipment_id]
    attempt = len(await repository.tracking_of(uow.conn, shipment_id))
    number = tracking_number or tracking_number_for(carrier, shipment_id, attempt)
    owner = await repository.tracking_owner(uow.conn, carrier, number)
    if owner is not None and owner != shipment_id:
        raise TrackingTaken(f"{carrier} tracking number {number} belongs to another shipment")
    after, reassigned = before.reassign(carrier, number, reason, actor, uow.now)
    await repository.save_shipments(uow.conn, [after])
    await repository.add_tracking(uow.conn, [(carrier, number, shipment_id, uow.now)])
    details: dict[str, Any] = {
        "previous_carrier": before.carrier,
        "previous_tracking_number": before.tracking_number,
        "carrier": carrier,
        "tracking_number": number,
        "reason": reason,
        "by": actor,
    }
    if actor_name:
        details["by_name"] = actor_name
    await repository.add_history(uow.conn, [(shipment_id, uow.now, "reassigned", details)])
    _publish(uow, topics.logistics, shipment_id, reassigned, None)
    return after


# -- delay compensation (a scheduled job) -------------------------------------------------------


@dataclass(frozen=True)
class CompensationPolicy:
    by_reason: Mapping[DelayReason, DelayCompensation]
    overdue_after_s: float
    stalled_after_s: float


async def compensate_delays(
    uow: UnitOfWork, topics: Topics, policy: CompensationPolicy, limit: int
) -> int:
    """Compensate each overdue or long-stalled shipment once (compensated_for is set in the same
    transaction), and ask the notifier to tell the customer. A reason with no compensation
    configured marks the shipment without paying anything, so it is not looked at again."""
    owed = await repository.lock_owed_compensation(
        uow.conn, uow.now, policy.overdue_after_s, policy.stalled_after_s, limit
    )
    changed: list[Shipment] = []
    history: list[tuple[str, datetime, str, dict[str, Any]]] = []
    for shipment in owed:
        reason = shipment.delay_to_compensate(
            uow.now, policy.overdue_after_s, policy.stalled_after_s
        )
        if reason is None:
            continue
        compensation = policy.by_reason.get(reason)
        if compensation is None:
            changed.append(replace(shipment, compensated_for=reason))
            history.append(
                (shipment.shipment_id, uow.now, "delay_not_compensated", {"reason": reason})
            )
            continue
        amount = compensation.amount
        marked, compensated = shipment.compensate(reason, compensation.kind, amount, uow.now)
        changed.append(marked)
        history.append(
            (
                shipment.shipment_id,
                uow.now,
                "delay_compensated",
                {"reason": reason, "kind": compensation.kind, "amount": str(amount)},
            )
        )
        _publish(uow, topics.logistics, shipment.shipment_id, compensated, None)
        uow.notify_customer(
            topics.notification_requests,
            delay_notice(shipment, compensated),
            source=SOURCE,
            customer_id=shipment.customer_id,
            phone=shipment.phone,
        )
    if changed:
        await repository.save_shipments(uow.conn, changed)
        await repository.add_history(uow.conn, history)
        log.info("delays compensated", shipments=len(changed))
    return len(changed)


# -- queries ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShipmentWithHistory:
    shipment: Shipment
    tracking: list[Mapping[str, Any]]
    scans: list[Mapping[str, Any]]
    history: list[Mapping[str, Any]]


async def shipment_with_history(conn: Any, shipment_id: str) -> ShipmentWithHistory:
    shipment = await repository.shipment(conn, shipment_id)
    if shipment is None:
        raise ShipmentNotFound(shipment_id)
    return await _with_history(conn, shipment)


async def shipments_of_order(conn: Any, order_id: str) -> list[ShipmentWithHistory]:
    return [
        await _with_history(conn, s) for s in await repository.shipments_of_order(conn, order_id)
    ]


async def _with_history(conn: Any, shipment: Shipment) -> ShipmentWithHistory:
    return ShipmentWithHistory(
        shipment,
        await repository.tracking_of(conn, shipment.shipment_id),
        await repository.scans_of(conn, shipment.shipment_id),
        await repository.history_of(conn, shipment.shipment_id),
    )
