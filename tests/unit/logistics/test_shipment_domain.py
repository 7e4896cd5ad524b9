"""The shipment state machine: forward only, each scan's effect, reassignment, compensation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orderguard.services.logistics.domain import (
    SameTracking,
    Scan,
    Shipment,
    ShipmentDelivered,
    choose_carrier,
    scan_from_the_future,
    shipment_id_for,
    tracking_number_for,
)

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def shipment(**changes: object) -> Shipment:
    values: dict[str, object] = dict(
        shipment_id="shp_1",
        order_id="o1",
        warehouse="main",
        carrier="sf-express",
        tracking_number="SF1",
        status="created",
        promised_delivery_by=T0 + timedelta(days=3),
        customer_id="c1",
        phone="13800138000",
        created_at=T0,
    )
    values.update(changes)
    return Shipment(**values)  # type: ignore[arg-type]


def scan(status: str, minutes: int, reason: str | None = None, n: int = 0) -> Scan:
    return Scan(
        "sf-express",
        "SF1",
        f"s{n}",
        status,
        T0 + timedelta(minutes=minutes),  # type: ignore[arg-type]
        exception_reason=reason,
    )  # type: ignore[arg-type]


def test_the_first_scan_of_progress_dispatches_and_delivery_delivers() -> None:
    picked = shipment().apply_scan(scan("picked_up", 10))
    assert (picked.status_changed, picked.dispatched, picked.delivered) == (True, True, False)
    assert (
        picked.shipment.status == "picked_up"
        and picked.shipment.dispatched_at == T0 + timedelta(minutes=10)
    )
    moving = picked.shipment.apply_scan(scan("in_transit", 20))
    assert moving.status_changed and not moving.dispatched, "dispatched once"
    done = moving.shipment.apply_scan(scan("delivered", 30))
    assert (
        done.delivered
        and done.shipment.delivered
        and done.shipment.delivered_at == T0 + timedelta(minutes=30)
    )


def test_a_first_scan_past_pickup_still_dispatches() -> None:
    outcome = shipment().apply_scan(scan("delivered", 5))
    assert outcome.dispatched and outcome.delivered


def test_late_and_out_of_order_scans_never_move_the_status_back() -> None:
    s = shipment().apply_scan(scan("out_for_delivery", 60)).shipment
    late = s.apply_scan(scan("in_transit", 30))
    assert not late.status_changed and late.shipment.status == "out_for_delivery"
    assert late.shipment.last_scan_at == T0 + timedelta(minutes=60), "the latest scan time stays"
    repeated = s.apply_scan(scan("out_for_delivery", 90))
    assert not repeated.status_changed and repeated.shipment.last_scan_at == T0 + timedelta(
        minutes=90
    )


def test_an_exception_is_recorded_without_moving_the_status() -> None:
    s = shipment().apply_scan(scan("in_transit", 10)).shipment
    outcome = s.apply_scan(scan("exception", 20, reason="damaged"))
    assert outcome.exception == "damaged" and not outcome.status_changed
    assert outcome.shipment.status == "in_transit" and outcome.shipment.last_exception == "damaged"


def test_reassignment_keeps_status_and_is_refused_once_delivered_or_unchanged() -> None:
    s = shipment().apply_scan(scan("in_transit", 10)).shipment
    moved, event = s.reassign("zto", "ZTO9", "carrier outage", "api:ops", T0)
    assert (moved.carrier, moved.tracking_number, moved.status) == ("zto", "ZTO9", "in_transit")
    assert moved.last_scan_at == s.last_scan_at
    assert (event.previous_carrier, event.carrier, event.tracking_number) == (
        s.carrier,
        "zto",
        "ZTO9",
    )
    with pytest.raises(SameTracking):
        moved.reassign("zto", "ZTO9", "again", "api:ops", T0)
    with pytest.raises(ShipmentDelivered):
        s.apply_scan(scan("delivered", 20)).shipment.reassign("zto", "ZTO9", "x", "api:ops", T0)


def test_delay_compensation_is_owed_once_when_overdue_or_stalled() -> None:
    hour = 3600.0
    promised = shipment().promised_delivery_by
    assert shipment().delay_to_compensate(promised - timedelta(hours=1), 0, 48 * hour) is None
    assert shipment().delay_to_compensate(promised, 0, 48 * hour) == "overdue"
    moving = shipment().apply_scan(scan("in_transit", 0)).shipment
    assert moving.delay_to_compensate(T0 + timedelta(hours=47), 0, 48 * hour) is None
    assert moving.delay_to_compensate(T0 + timedelta(hours=48), 0, 48 * hour) == "stalled"
    assert shipment(compensated_for="stalled").delay_to_compensate(promised, 0, hour) is None
    delivered = moving.apply_scan(scan("delivered", 5)).shipment
    assert delivered.delay_to_compensate(promised + timedelta(days=9), 0, hour) is None


def test_ids_and_tracking_numbers_are_stable_and_the_carrier_follows_the_warehouse() -> None:
    assert shipment_id_for("o1") == shipment_id_for("o1") != shipment_id_for("o2")
    number = tracking_number_for("sf-express", "shp_1")
    assert number == tracking_number_for("sf-express", "shp_1") and number.startswith("SE")
    assert tracking_number_for("sf-express", "shp_1", attempt=1) != number
    assert choose_carrier("north", {"north": "zto"}, "sf-express") == "zto"
    assert choose_carrier("main", {"north": "zto"}, "sf-express") == "sf-express"


def test_a_scan_dated_beyond_the_clock_skew_is_from_the_future() -> None:
    assert not scan_from_the_future(T0 + timedelta(minutes=5), T0)
    assert scan_from_the_future(T0 + timedelta(minutes=5, seconds=1), T0)
    assert not scan_from_the_future(T0 - timedelta(days=3), T0), "late scans are fine"
