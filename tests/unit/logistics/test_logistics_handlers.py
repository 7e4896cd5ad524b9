"""Logistics use cases on an in-memory unit of work: the events and state each one produces."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from inmemory import NOW, InMemoryUnitOfWork, incoming, one
from inmemory.logistics import LogisticsRepository

from orderguard.services.logistics import handlers
from orderguard.services.logistics.domain import shipment_id_for
from orderguard.services.logistics.settings import DelayCompensation
from orderguard.shared.engine import RejectEvent
from orderguard.shared.events.carriers import CarrierScan
from orderguard.shared.events.logistics import (
    ShipmentCreated,
    ShipmentDelayCompensated,
    ShipmentDelivered,
    ShipmentDispatched,
    ShipmentExceptionReported,
    ShipmentReassigned,
    ShipmentScanned,
)
from orderguard.shared.events.notifications import NotificationRequested
from orderguard.shared.events.orders import OrderPaid
from orderguard.shared.topics import Topics

TOPICS = Topics()
CARRIERS = handlers.CarrierRule(default="sf-express", by_warehouse={"north": "zto"})
PAID_EXAMPLE = OrderPaid.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]


@pytest.fixture
def repo(monkeypatch: pytest.MonkeyPatch) -> LogisticsRepository:
    fake = LogisticsRepository()
    monkeypatch.setattr(handlers, "repository", fake)
    return fake


def paid(order_id: str, warehouse: str = "main") -> OrderPaid:
    return OrderPaid.model_validate(
        {
            **PAID_EXAMPLE,
            "order_id": order_id,
            "warehouse": warehouse,
            "promised_delivery_by": NOW + timedelta(days=3),
        }
    )


async def shipment_of(repo: LogisticsRepository, order_id: str) -> tuple[str, str]:
    """Create the order's shipment; its (id, tracking number)."""
    await handlers.create_shipments(
        InMemoryUnitOfWork(), [incoming(paid(order_id), order_id)], TOPICS, CARRIERS
    )
    shipment = repo.shipments[shipment_id_for(order_id)]
    return shipment.shipment_id, shipment.tracking_number


def scan(number: str, scan_id: str, status: str, minutes: int, **more: object) -> CarrierScan:
    return CarrierScan.model_validate(
        {
            "carrier": "sf-express",
            "tracking_number": number,
            "scan_id": scan_id,
            "status": status,
            "scanned_at": NOW + timedelta(minutes=minutes),
            **more,
        }
    )


async def apply(*scans: CarrierScan) -> InMemoryUnitOfWork:
    uow = InMemoryUnitOfWork(NOW + timedelta(days=1))
    await handlers.apply_scans(uow, [incoming(s, s.tracking_number) for s in scans], TOPICS)
    return uow


async def test_a_paid_order_gets_one_shipment_whatever_is_redelivered(
    repo: LogisticsRepository,
) -> None:
    uow = InMemoryUnitOfWork()
    cause = incoming(
        paid("o-1", warehouse="north"), "o-1", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    )
    await handlers.create_shipments(uow, [cause, cause], TOPICS, CARRIERS)

    created = one(uow.events(ShipmentCreated))
    assert (created.order_id, created.carrier, created.warehouse) == ("o-1", "zto", "north")
    [(topic, envelope)] = uow.published
    assert (topic, envelope.subject) == (TOPICS.logistics, created.shipment_id)
    assert envelope.traceparent and envelope.traceparent.split("-")[1] == "a" * 32  # continued
    assert repo.shipments[created.shipment_id].status == "created"

    again = InMemoryUnitOfWork()
    await handlers.create_shipments(again, [cause], TOPICS, CARRIERS)
    assert again.types() == []


async def test_scans_move_the_shipment_and_publish_what_they_imply(
    repo: LogisticsRepository,
) -> None:
    shipment_id, number = await shipment_of(repo, "o-2")
    uow = await apply(
        scan(number, "s1", "picked_up", 1),
        scan(number, "s1", "picked_up", 1),  # the same scan again
        scan(number, "s2", "in_transit", 2),
        scan(number, "s3", "exception", 3, exception_reason="damaged", location="Hub"),
        scan(number, "s4", "picked_up", 4),  # late: changes nothing but last_scan_at
        scan(number, "s5", "delivered", 5),
    )

    assert uow.types() == [
        "shipment.scanned.v1",
        "shipment.dispatched.v1",
        "shipment.scanned.v1",
        "shipment.scanned.v1",
        "shipment.exception_reported.v1",
        "shipment.scanned.v1",
        "shipment.scanned.v1",
        "shipment.delivered.v1",
    ]
    scanned = uow.events(ShipmentScanned)
    assert [(s.scan_id, s.shipment_status, s.status_changed) for s in scanned] == [
        ("s1", "picked_up", True),
        ("s2", "in_transit", True),
        ("s3", "in_transit", False),
        ("s4", "in_transit", False),
        ("s5", "delivered", True),
    ]
    assert one(uow.events(ShipmentDispatched)).dispatched_at == NOW + timedelta(minutes=1)
    assert one(uow.events(ShipmentExceptionReported)).reason == "damaged"
    assert one(uow.events(ShipmentDelivered)).delivered_at == NOW + timedelta(minutes=5)
    # Event time is the carrier's scan time.
    assert [e.time for _, e in uow.published][-1] == NOW + timedelta(minutes=5)
    stored = repo.shipments[shipment_id]
    assert (stored.status, stored.last_exception) == ("delivered", "damaged")
    assert len(repo.scans) == 5

    replayed = await apply(scan(number, "s2", "in_transit", 2))
    assert replayed.types() == []


async def test_a_scan_nobody_can_own_or_from_the_future_is_rejected(
    repo: LogisticsRepository,
) -> None:
    _, number = await shipment_of(repo, "o-3")
    with pytest.raises(RejectEvent, match="no shipment"):
        await apply(scan("SF-UNKNOWN", "s1", "picked_up", 1))
    with pytest.raises(RejectEvent, match="future"):
        await apply(scan(number, "s1", "picked_up", 60 * 48))


async def test_reassigning_publishes_the_previous_and_new_carrier(
    repo: LogisticsRepository,
) -> None:
    shipment_id, number = await shipment_of(repo, "o-4")
    uow = InMemoryUnitOfWork()
    after = await handlers.reassign(uow, TOPICS, shipment_id, "zto", None, "outage", "api:ops")

    event = one(uow.events(ShipmentReassigned))
    assert (event.previous_carrier, event.previous_tracking_number) == ("sf-express", number)
    assert (event.carrier, event.tracking_number) == ("zto", after.tracking_number)
    assert repo.shipments[shipment_id].carrier == "zto"
    assert await repo.tracking_owner(None, "sf-express", number) == shipment_id  # still known
    with pytest.raises(handlers.ShipmentNotFound):
        await handlers.reassign(uow, TOPICS, "shp_nope", "zto", None, "x", "api:ops")


async def test_an_overdue_shipment_is_compensated_once_and_the_customer_told(
    repo: LogisticsRepository,
) -> None:
    shipment_id, _ = await shipment_of(repo, "o-5")
    policy = handlers.CompensationPolicy(
        by_reason={"overdue": DelayCompensation(kind="coupon", amount=Decimal("10.00"))},
        overdue_after_s=0,
        stalled_after_s=48 * 3600,
    )
    late = InMemoryUnitOfWork(NOW + timedelta(days=4))
    assert await handlers.compensate_delays(late, TOPICS, policy, 10) == 1

    compensated = one(late.events(ShipmentDelayCompensated))
    assert (compensated.reason, compensated.kind, compensated.amount) == (
        "overdue",
        "coupon",
        Decimal("10.00"),
    )
    notice = one(late.events(NotificationRequested))
    assert (notice.template, notice.request_id) == (
        "shipment.delayed",
        f"shipment.delayed:{shipment_id}",
    )
    assert notice.params["compensation"] == "a coupon of 10.00 yuan"
    assert repo.shipments[shipment_id].compensated_for == "overdue"

    again = InMemoryUnitOfWork(NOW + timedelta(days=5))
    assert await handlers.compensate_delays(again, TOPICS, policy, 10) == 0
    assert again.types() == []
