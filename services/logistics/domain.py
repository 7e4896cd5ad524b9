"""The shipment and its state machine. Pure: no I/O, no framework.

A shipment only moves forward: created -> picked_up -> in_transit -> out_for_delivery ->
delivered. A scan is applied once (per carrier and scan id); a scan that would move the status
back (late, out of order, repeated) is kept in the history and changes nothing else. An
exception scan records the carrier's reason without moving the status.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal, TypeAlias

from orderguard.shared.errors import Conflict, Invalid
from orderguard.shared.events import logistics as contract
from orderguard.shared.events.notifications import CustomerNotice

ShipmentStatus = Literal["created", "picked_up", "in_transit", "out_for_delivery", "delivered"]
ScanStatus = Literal["picked_up", "in_transit", "out_for_delivery", "delivered", "exception"]
ExceptionReason = Literal["lost", "damaged", "address_problem", "refused"]
DelayReason = Literal["overdue", "stalled"]
CompensationKind = Literal["coupon", "points"]

PROGRESS: dict[str, int] = {
    "created": 0,
    "picked_up": 1,
    "in_transit": 2,
    "out_for_delivery": 3,
    "delivered": 4,
}
# Statuses in which the carrier holds the parcel: silence there is a stall.
IN_TRANSIT = frozenset({"picked_up", "in_transit", "out_for_delivery"})
# How far ahead of our clock a carrier's scan time may be (their clocks drift a little).
SCAN_CLOCK_SKEW = timedelta(minutes=5)


class ShipmentDelivered(Conflict):
    """A delivered shipment cannot change carrier."""

    def __init__(self, shipment_id: str) -> None:
        super().__init__(
            f"Shipment {shipment_id} is delivered; it cannot change carrier.",
            slug="shipment-delivered",
            title="Shipment already delivered",
            shipment_id=shipment_id,
        )
        self.shipment_id = shipment_id


class SameTracking(Invalid):
    """Reassigning to the carrier and tracking number the shipment already has."""

    slug = "same-tracking"
    title = "Nothing to reassign"


@dataclass(frozen=True, slots=True)
class Scan:
    carrier: str
    tracking_number: str
    scan_id: str
    status: ScanStatus
    scanned_at: datetime
    location: str | None = None
    exception_reason: ExceptionReason | None = None


ScanEvent: TypeAlias = (
    contract.ShipmentScanned
    | contract.ShipmentDispatched
    | contract.ShipmentDelivered
    | contract.ShipmentExceptionReported
)


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    """What applying one scan did: the new shipment and the facts to publish (the scan itself
    first, then dispatched / delivered / exception as the scan implies)."""

    shipment: Shipment
    status_changed: bool
    dispatched: bool  # the carrier took the parcel (first scan of progress)
    delivered: bool
    exception: ExceptionReason | None
    events: tuple[ScanEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class Shipment:
    shipment_id: str
    order_id: str
    warehouse: str
    carrier: str
    tracking_number: str
    status: ShipmentStatus
    promised_delivery_by: datetime
    customer_id: str
    phone: str  # personal data: for the customer's notifications only, never logged
    created_at: datetime
    dispatched_at: datetime | None = None
    delivered_at: datetime | None = None
    last_scan_at: datetime | None = None
    last_exception: ExceptionReason | None = None
    compensated_for: str | None = None

    @classmethod
    def create(
        cls,
        *,
        order_id: str,
        warehouse: str,
        carrier: str,
        promised_delivery_by: datetime,
        customer_id: str,
        phone: str,
        now: datetime,
    ) -> tuple[Shipment, contract.ShipmentCreated]:
        """The one shipment of a paid order (its id derives from the order's)."""
        shipment_id = shipment_id_for(order_id)
        shipment = cls(
            shipment_id=shipment_id,
            order_id=order_id,
            warehouse=warehouse,
            carrier=carrier,
            tracking_number=tracking_number_for(carrier, shipment_id),
            status="created",
            promised_delivery_by=promised_delivery_by,
            customer_id=customer_id,
            phone=phone,
            created_at=now,
        )
        return shipment, contract.ShipmentCreated(
            shipment_id=shipment_id,
            order_id=order_id,
            carrier=carrier,
            tracking_number=shipment.tracking_number,
            warehouse=warehouse,
            promised_delivery_by=promised_delivery_by,
            created_at=now,
        )

    @property
    def delivered(self) -> bool:
        return self.status == "delivered"

    def apply_scan(self, scan: Scan) -> ScanOutcome:
        """The scan's effect. Only a scan of further progress moves the status; every scan
        counts for `last_scan_at` (the latest scan time seen, never earlier)."""
        last = (
            scan.scanned_at
            if self.last_scan_at is None
            else max(self.last_scan_at, scan.scanned_at)
        )
        if scan.status == "exception":
            after = replace(self, last_scan_at=last, last_exception=scan.exception_reason)
            return after._scanned(scan, False, False, False, scan.exception_reason)
        forward = PROGRESS[scan.status] > PROGRESS[self.status]
        if not forward:
            return replace(self, last_scan_at=last)._scanned(scan, False, False, False, None)
        dispatched = self.dispatched_at is None
        delivered = scan.status == "delivered"
        after = replace(
            self,
            status=scan.status,
            last_scan_at=last,
            dispatched_at=scan.scanned_at if dispatched else self.dispatched_at,
            delivered_at=scan.scanned_at if delivered else self.delivered_at,
        )
        return after._scanned(scan, True, dispatched, delivered, None)

    def _scanned(
        self,
        scan: Scan,
        status_changed: bool,
        dispatched: bool,
        delivered: bool,
        exception: ExceptionReason | None,
    ) -> ScanOutcome:
        """The outcome of `scan` on this (new) shipment, with the events it implies."""
        parcel = {
            "shipment_id": self.shipment_id,
            "order_id": self.order_id,
            "carrier": scan.carrier,
            "tracking_number": scan.tracking_number,
        }
        implied: list[ScanEvent] = [
            contract.ShipmentScanned(
                **parcel,
                scan_id=scan.scan_id,
                scan_status=scan.status,
                location=scan.location,
                exception_reason=scan.exception_reason,
                scanned_at=scan.scanned_at,
                shipment_status=self.status,
                status_changed=status_changed,
            )
        ]
        if dispatched:
            implied.append(
                contract.ShipmentDispatched(
                    **parcel, warehouse=self.warehouse, dispatched_at=scan.scanned_at
                )
            )
        if delivered:
            implied.append(contract.ShipmentDelivered(**parcel, delivered_at=scan.scanned_at))
        if exception is not None:
            implied.append(
                contract.ShipmentExceptionReported(
                    **parcel,
                    warehouse=self.warehouse,
                    scan_id=scan.scan_id,
                    reason=exception,
                    location=scan.location,
                    reported_at=scan.scanned_at,
                )
            )
        return ScanOutcome(self, status_changed, dispatched, delivered, exception, tuple(implied))

    def reassign(
        self, carrier: str, tracking_number: str, reason: str, by: str, now: datetime
    ) -> tuple[Shipment, contract.ShipmentReassigned]:
        """Hand the parcel to another carrier; status, scans and deadlines continue."""
        if self.delivered:
            raise ShipmentDelivered(self.shipment_id)
        if (carrier, tracking_number) == (self.carrier, self.tracking_number):
            raise SameTracking(
                f"shipment {self.shipment_id} already has {carrier} {tracking_number}"
            )
        return replace(self, carrier=carrier, tracking_number=tracking_number), (
            contract.ShipmentReassigned(
                shipment_id=self.shipment_id,
                order_id=self.order_id,
                previous_carrier=self.carrier,
                previous_tracking_number=self.tracking_number,
                carrier=carrier,
                tracking_number=tracking_number,
                reason=reason,
                reassigned_by=by,
                reassigned_at=now,
            )
        )

    def compensate(
        self, reason: DelayReason, kind: CompensationKind, amount: Decimal, now: datetime
    ) -> tuple[Shipment, contract.ShipmentDelayCompensated]:
        """The customer is compensated for `reason`, once: the shipment is marked with it."""
        return replace(self, compensated_for=reason), contract.ShipmentDelayCompensated(
            shipment_id=self.shipment_id,
            order_id=self.order_id,
            customer_id=self.customer_id,
            carrier=self.carrier,
            reason=reason,
            kind=kind,
            amount=amount,
            compensated_at=now,
        )

    def delay_to_compensate(
        self, now: datetime, overdue_after_s: float, stalled_after_s: float
    ) -> DelayReason | None:
        """Why the customer is owed a compensation now (None: not owed, or already given)."""
        if self.compensated_for is not None or self.delivered:
            return None
        if (now - self.promised_delivery_by).total_seconds() >= overdue_after_s:
            return "overdue"
        if (
            self.status in IN_TRANSIT
            and self.last_scan_at is not None
            and (now - self.last_scan_at).total_seconds() >= stalled_after_s
        ):
            return "stalled"
        return None


def delay_notice(
    shipment: Shipment, compensated: contract.ShipmentDelayCompensated
) -> CustomerNotice:
    """What the customer is told of a delay and its compensation, once per shipment."""
    amount = compensated.amount
    what = (
        f"a coupon of {amount} yuan"
        if compensated.kind == "coupon"
        else f"{amount.normalize():f} points"
    )
    return CustomerNotice(
        "shipment.delayed",
        f"shipment.delayed:{shipment.shipment_id}",
        {
            "order_id": shipment.order_id,
            "carrier": shipment.carrier,
            "reason": compensated.reason,
            "compensation": what,
        },
    )


def scan_from_the_future(scanned_at: datetime, now: datetime) -> bool:
    """A scan dated beyond the allowed skew cannot be true; applied, it would also move the
    event-time clock of every shipment on its partition and fire their deadlines early."""
    return scanned_at > now + SCAN_CLOCK_SKEW


def shipment_id_for(order_id: str) -> str:
    """One shipment per order, whatever is redelivered: its id derives from the order's."""
    return "shp_" + hashlib.sha256(order_id.encode()).hexdigest()[:24].upper()


def choose_carrier(warehouse: str, by_warehouse: Mapping[str, str], default: str) -> str:
    """The warehouse's carrier when it has one, else the default."""
    return by_warehouse.get(warehouse, default)


def tracking_number_for(carrier: str, shipment_id: str, attempt: int = 0) -> str:
    """A tracking number in the carrier's style: its prefix and 13 digits, stable per shipment."""
    prefix = "".join(part[:1] for part in carrier.upper().split("-"))[:3] or "X"
    digest = hashlib.sha256(f"{carrier}:{shipment_id}:{attempt}".encode()).hexdigest()
    return prefix + str(int(digest[:16], 16))[:13].rjust(13, "0")
