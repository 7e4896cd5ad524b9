"""The stock ledger and the reservation state machine, pure and through the Inventory use
cases with a recording unit of work: reserve, commit and release each happen once; illegal
moves are refused; every movement is a ledger row that sums to the stock row."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from inmemory import InMemoryUnitOfWork
from testkit import cancelled, placed

from orderguard.cli.services_registry import rule_catalogue
from orderguard.services.inventory.domain import (
    LedgerEntry,
    ReservationLine,
    StockLevel,
    decide,
    replay,
)
from orderguard.services.inventory.handlers import Inventory
from orderguard.services.inventory.rules import UnknownReservation
from orderguard.shared.detection.config import parse_detector_config
from orderguard.shared.envelope import Envelope
from orderguard.shared.errors import IllegalTransition
from orderguard.shared.events.orders import OrderPlaced, OrderShipped, ReservationRequested
from orderguard.shared.topics import Topics

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)

# -- pure: stock levels and the ledger ---------------------------------------------------------


def test_commit_drops_on_hand_and_reserved_together() -> None:
    level = StockLevel("A", "main", on_hand=10, reserved=4)
    after = level.commit(3)
    assert (after.on_hand, after.reserved, after.available) == (7, 1, 6)


def test_commit_never_takes_on_hand_below_zero() -> None:
    # A count found fewer than were reserved; the shipment still went out.
    assert StockLevel("A", "main", on_hand=1, reserved=3).commit(3).on_hand == 0


def test_receipts_add_units_and_refuse_nothing_or_less() -> None:
    assert StockLevel("A", "main", on_hand=2).receive(5).on_hand == 7
    for quantity in (0, -1):
        with pytest.raises(ValueError, match="must add units"):
            StockLevel("A", "main", on_hand=2).receive(quantity)


def test_a_count_sets_on_hand_and_may_leave_available_negative() -> None:
    level = StockLevel("A", "main", on_hand=10, reserved=6).counted(4)
    assert (level.on_hand, level.available) == (4, -2)
    with pytest.raises(ValueError):
        level.counted(-1)


def test_ledger_entries_record_deltas_and_sum_to_the_balance() -> None:
    empty = StockLevel("A", "main", on_hand=0)
    steps = [
        ("received", empty.receive(10)),
        ("reserved", empty.receive(10).reserve(4)),
        ("committed", empty.receive(10).reserve(4).commit(4)),
        ("adjusted", empty.receive(10).reserve(4).commit(4).counted(5)),
    ]
    entries, before = [], empty
    for movement, after in steps:
        entries.append(LedgerEntry.between(before, after, movement))  # type: ignore[arg-type]
        before = after
    assert [(e.on_hand_delta, e.reserved_delta) for e in entries] == [
        (10, 0),
        (0, 4),
        (-4, -4),
        (-1, 0),
    ]
    assert replay("A", "main", entries) == StockLevel("A", "main", on_hand=5, reserved=0)
    assert (entries[-1].on_hand_after, entries[-1].reserved_after) == (5, 0)


# -- pure: the reservation state machine -------------------------------------------------------


def line(state: str) -> ReservationLine:
    return ReservationLine("o-1", "A", "main", 2, state)  # type: ignore[arg-type]


def test_a_held_line_commits_or_releases_once() -> None:
    assert line("held").commit().state == "committed"
    assert line("held").release().state == "released"


@pytest.mark.parametrize("state", ["committed", "released", "failed"])
@pytest.mark.parametrize("move", [ReservationLine.commit, ReservationLine.release])
def test_only_a_held_line_may_move(
    state: str, move: Callable[[ReservationLine], ReservationLine]
) -> None:
    with pytest.raises(IllegalTransition, match=f"is {state}: cannot"):
        move(line(state))


@pytest.mark.parametrize(
    ("states", "action", "decision"),
    [
        (["held"], "commit", "apply"),
        (["held"], "release", "apply"),
        (["committed"], "commit", "already_done"),
        (["released"], "release", "already_done"),
        (["committed"], "release", "after_commit"),
        (["failed"], "release", "nothing_held"),
        ([], "release", "unknown"),
        ([], "commit", "unknown"),
        (["released"], "commit", "unknown"),
        (["failed"], "commit", "unknown"),
    ],
)
def test_what_a_commit_or_release_does_follows_the_lines_state(
    states: list[str], action: str, decision: str
) -> None:
    assert decide([line(s) for s in states], action) == decision  # type: ignore[arg-type]


# -- the use cases, with a recording unit of work ------------------------------------------------


class RecordingUnitOfWork(InMemoryUnitOfWork):
    inventory: Inventory

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        """What the inventory published so far (as `save` would), of this type."""
        self.inventory.publish()
        return [e.data for _, e in self.published if e.type == event_type]


def inventory_with(on_hand: int, detectors_file: str = "") -> tuple[Inventory, RecordingUnitOfWork]:
    uow = RecordingUnitOfWork(NOW)
    config = parse_detector_config(detectors_file, "test", rule_catalogue())
    unknown = UnknownReservation(config.rule(UnknownReservation.name))
    inventory = uow.inventory = Inventory(uow, Topics(), unknown)
    inventory.set_stock("SKU-1", "main", on_hand, None, actor="test")
    inventory.ledger.clear()
    inventory.events.clear()
    return inventory, uow


def shipped(order_id: str, shipment_id: str = "shp-1") -> Envelope:
    data = OrderShipped(
        order_id=order_id,
        shipment_id=shipment_id,
        carrier="sf-express",
        tracking_number="SF1",
        shipped_at=NOW,
    )
    return Envelope(
        type="order.shipped.v1", source="/t", subject=order_id, data=data.model_dump(mode="json")
    )


def apply(inventory: Inventory, envelope: Envelope) -> None:
    if envelope.type == "order.placed.v1":
        inventory.reserve_for(OrderPlaced.model_validate(envelope.data), envelope)
    elif envelope.type == "order.shipped.v1":
        inventory.commit_for(OrderShipped.model_validate(envelope.data), envelope)
    else:
        from orderguard.shared.events.orders import OrderCancelled

        inventory.release_for(OrderCancelled.model_validate(envelope.data), envelope)


def test_reserve_then_commit_once_whatever_is_repeated() -> None:
    inventory, uow = inventory_with(10)
    apply(inventory, placed("o-1", "SKU-1", 3))
    apply(inventory, placed("o-1", "SKU-1", 3))  # the same fact under a new id
    for _ in range(3):
        apply(inventory, shipped("o-1"))  # the shipment again, and again
    level = inventory.levels[("SKU-1", "main")]
    assert (level.on_hand, level.reserved) == (7, 0)
    assert [e.movement for e in inventory.ledger] == ["reserved", "committed"]
    assert [line.state for line in inventory.reservations["o-1"]] == ["committed"]
    assert len(uow.of_type("inventory.reserved.v1")) == 1
    [committed] = uow.of_type("inventory.committed.v1")
    assert committed["lines"] == [{"sku": "SKU-1", "warehouse": "main", "quantity": 3}]
    assert committed["shipment_id"] == "shp-1"
    assert replay("SKU-1", "main", inventory.ledger).on_hand == -3, "the deltas after set_stock"


def test_a_cancel_after_shipment_releases_nothing() -> None:
    inventory, uow = inventory_with(10)
    apply(inventory, placed("o-1", "SKU-1", 3))
    apply(inventory, shipped("o-1"))
    apply(inventory, cancelled("o-1"))
    level = inventory.levels[("SKU-1", "main")]
    assert (level.on_hand, level.reserved) == (7, 0), "the goods left: nothing to give back"
    assert uow.of_type("inventory.released.v1") == []
    assert uow.of_type("anomaly.detected.v1") == [], "a known order: no data error"


def test_release_once_then_a_shipment_is_an_unknown_reservation() -> None:
    inventory, uow = inventory_with(10)
    apply(inventory, placed("o-1", "SKU-1", 3))
    apply(inventory, cancelled("o-1"))
    apply(inventory, cancelled("o-1"))  # a producer's duplicate
    apply(inventory, shipped("o-1"))
    level = inventory.levels[("SKU-1", "main")]
    assert (level.on_hand, level.reserved) == (10, 0)
    assert len(uow.of_type("inventory.released.v1")) == 1
    [anomaly] = uow.of_type("anomaly.detected.v1")
    assert anomaly["rule"] == "inventory.unknown_reservation"
    assert anomaly["labels"]["found"] == "released"
    assert anomaly["labels"]["action"] == "commit"


def test_the_unknown_reservation_anomaly_is_configured_by_the_detectors_file() -> None:
    inventory, uow = inventory_with(
        10, "rules:\n  inventory.unknown_reservation:\n    params: {severity: P1}\n"
    )
    apply(inventory, shipped("ghost"))
    [anomaly] = uow.of_type("anomaly.detected.v1")
    assert (anomaly["severity"], anomaly["labels"]["severity"]) == ("P1", "P1")
    assert anomaly["team"] == "warehouse"

    inventory, uow = inventory_with(
        10, "rules:\n  inventory.unknown_reservation: {enabled: false}\n"
    )
    apply(inventory, shipped("ghost"))
    assert uow.of_type("anomaly.detected.v1") == [], "disabled: nothing raised"


def test_commit_and_release_of_an_order_never_seen_raise_one_fingerprint_each() -> None:
    inventory, uow = inventory_with(10)
    apply(inventory, shipped("ghost"))
    apply(inventory, shipped("ghost", "shp-2"))  # the same fact, another event id
    apply(inventory, cancelled("ghost"))
    anomalies = uow.of_type("anomaly.detected.v1")
    assert [a["labels"]["action"] for a in anomalies] == ["commit", "commit", "release"]
    assert anomalies[0]["fingerprint"] == anomalies[1]["fingerprint"], "collapses downstream"
    assert anomalies[0]["fingerprint"] != anomalies[2]["fingerprint"]
    assert {a["team"] for a in anomalies} == {"warehouse"}
    assert inventory.ledger == []
    assert ("ghost" in inventory.reservations) is False


def test_a_shortage_fails_once_and_leaves_telling_the_customer_to_the_order_service() -> None:
    inventory, uow = inventory_with(2)
    apply(inventory, placed("o-1", "SKU-1", 3))
    apply(inventory, placed("o-1", "SKU-1", 3))  # same fact, new id: not tried twice
    apply(inventory, cancelled("o-1"))  # the order service cancels it: nothing held, no anomaly
    [failed] = uow.of_type("inventory.reservation_failed.v1")
    assert failed["shortages"] == [
        {"sku": "SKU-1", "warehouse": "main", "requested": 3, "available": 2}
    ]
    # The order service holds the order and tells the customer; inventory only reports.
    assert uow.of_type("notification.requested.v1") == []
    assert [line.state for line in inventory.reservations["o-1"]] == ["failed"]
    assert inventory.ledger == [] and uow.of_type("anomaly.detected.v1") == []


def test_receipts_and_counts_are_ledger_movements_and_a_count_is_published() -> None:
    inventory, uow = inventory_with(10)
    inventory.receive("SKU-1", "main", 5, "rcv-1", "clerk")
    level, counted = inventory.count("SKU-1", "main", 12, "cnt-1", "clerk-7", (15, 0), NOW)
    assert level.on_hand == 12
    assert [(e.movement, e.on_hand_delta, e.reference) for e in inventory.ledger] == [
        ("received", 5, "rcv-1"),
        ("adjusted", -3, "cnt-1"),
    ]
    assert (counted.expected_on_hand, counted.ledger_on_hand, counted.counted_on_hand) == (
        15,
        15,
        12,
    )
    changes = uow.of_type("inventory.stock_changed.v1")
    assert [(c["cause"], c["movement"]) for c in changes] == [
        ("stock_set", "received"),
        ("adjusted", "adjusted"),
    ]
    assert uow.of_type("inventory.counted.v1")[0]["counted_by"] == "clerk-7"


def test_a_count_that_confirms_the_balance_is_still_recorded() -> None:
    inventory, _ = inventory_with(10)
    inventory.count("SKU-1", "main", 10, "cnt-1", "clerk", (10, 0), NOW)
    assert [(e.movement, e.on_hand_delta) for e in inventory.ledger] == [("adjusted", 0)]


def test_a_threshold_change_is_published_but_is_no_movement() -> None:
    inventory, uow = inventory_with(10)
    level = inventory.set_threshold("SKU-1", "main", 4)
    assert level.low_stock_threshold == 4 and inventory.ledger == []
    [change] = uow.of_type("inventory.stock_changed.v1")
    assert (change["low_stock_threshold"], change["movement"]) == (4, None)


def requested_again(order_id: str, quantity: int) -> Envelope:
    placed_facts = OrderPlaced.model_validate(placed(order_id, "SKU-1", quantity).data)
    data = ReservationRequested(
        order_id=order_id,
        warehouse=placed_facts.warehouse,
        lines=placed_facts.lines,
        reason="restock arrived",
        requested_by="api:ops",
        requested_at=NOW,
    )
    return Envelope(
        type="order.reservation_requested.v1",
        source="/t",
        subject=order_id,
        data=data.model_dump(mode="json"),
    )


def test_a_reservation_requested_again_retries_only_what_failed_and_only_once() -> None:
    inventory, uow = inventory_with(2)
    inventory.reserve_for(
        OrderPlaced.model_validate(placed("o-1", "SKU-1", 3).data), placed("o-1", "SKU-1", 3)
    )
    assert [line.state for line in inventory.reservations["o-1"]] == ["failed"]
    retry = requested_again("o-1", 3)
    inventory.reserve_for(ReservationRequested.model_validate(retry.data), retry)
    assert len(uow.of_type("inventory.reservation_failed.v1")) == 2  # still short: told again
    inventory.receive("SKU-1", "main", 5, "rcpt-1", actor="test")
    for _ in range(2):  # the request redelivered reserves nothing twice
        inventory.reserve_for(ReservationRequested.model_validate(retry.data), retry)
    level = inventory.levels[("SKU-1", "main")]
    assert (level.on_hand, level.reserved) == (7, 3)
    assert [line.state for line in inventory.reservations["o-1"]] == ["held"]
    assert len(uow.of_type("inventory.reserved.v1")) == 1
