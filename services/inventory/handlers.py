"""Inventory use cases: set, receive and count stock; reserve for a placed order, commit for a
shipped one, release for a cancelled one. Every stock change is a ledger row and an event."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial

from orderguard.services.inventory import repository
from orderguard.services.inventory.domain import (
    LedgerEntry,
    ReservationLine,
    StockBook,
    StockKey,
    StockLevel,
    UnknownReservation,
)
from orderguard.shared import metrics
from orderguard.shared.detection import fingerprint
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.events.inventory import StockCounted
from orderguard.shared.events.orders import OrderCancelled, OrderPlaced, OrderShipped
from orderguard.shared.logging import get_logger
from orderguard.shared.topics import Topics
from orderguard.shared.uow import UnitOfWork

SOURCE = "/orderguard/inventory"
# Anomalies found while applying an event (not by a stream rule) come from here.
CONSUMER_SOURCE = "/orderguard/inventory/reservations"
UNKNOWN_RESERVATION = "inventory.unknown_reservation"

log = get_logger(__name__)


class Inventory:
    """Stock levels and reservations touched by one unit of work, loaded once (locked) and
    written back once; the changes (`StockBook`, pure) record the ledger rows and events,
    published here with the event that caused them."""

    def __init__(self, uow: UnitOfWork, topics: Topics) -> None:
        self._uow = uow
        self._topics = topics
        self.book = StockBook()

    @property
    def levels(self) -> dict[StockKey, StockLevel]:
        return self.book.levels

    @property
    def ledger(self) -> list[LedgerEntry]:
        return self.book.ledger

    @property
    def reservations(self) -> dict[str, list[ReservationLine]]:
        return self.book.reservations

    async def load(self, keys: set[StockKey], order_ids: Sequence[str] = ()) -> None:
        """Lock the orders' reservations and every stock row they or `keys` touch."""
        self.reservations.update(await repository.reservations_of(self._uow.conn, order_ids))
        keys = keys | {(r.sku, r.warehouse) for lines in self.reservations.values() for r in lines}
        self.levels.update(await repository.lock_levels(self._uow.conn, keys))

    async def save(self) -> None:
        book = self.book
        await repository.save_levels(
            self._uow.conn, [book.levels[key] for key in sorted(book.changed)]
        )
        await repository.append_ledger(self._uow.conn, book.ledger, self._uow.now)
        await repository.save_reservations(self._uow.conn, book.changed_reservations)
        counts: dict[str, int] = {}
        for entry in book.ledger:
            counts[entry.movement] = counts.get(entry.movement, 0) + 1
        for movement, n in counts.items():
            self._uow.after_commit(partial(metrics.STOCK_MOVEMENTS.labels(movement).inc, n))

    def _publish(self, cause: Envelope | None) -> None:
        """Publish what the book recorded, continuing the trace of `cause`."""
        for subject, data in self.book.events:
            self._uow.publish(
                self._topics.inventory, data, source=SOURCE, subject=subject, cause=cause
            )
        self.book.events.clear()

    # -- people: set, receive, count ------------------------------------------------------------

    def set_stock(
        self,
        sku: str,
        warehouse: str,
        on_hand: int,
        low_stock_threshold: int | None,
        actor: str | None = None,
    ) -> StockLevel:
        level = self.book.set_stock(sku, warehouse, on_hand, low_stock_threshold, actor)
        self._publish(None)
        return level

    def set_threshold(
        self, sku: str, warehouse: str, low_stock_threshold: int | None, actor: str | None = None
    ) -> StockLevel:
        level = self.book.set_threshold(sku, warehouse, low_stock_threshold, actor)
        self._publish(None)
        return level

    def receive(
        self,
        sku: str,
        warehouse: str,
        quantity: int,
        receipt_id: str,
        actor: str,
        note: str | None = None,
    ) -> StockLevel:
        level = self.book.receive(sku, warehouse, quantity, receipt_id, actor, note)
        self._publish(None)
        return level

    def count(
        self,
        sku: str,
        warehouse: str,
        counted_on_hand: int,
        count_id: str,
        counted_by: str,
        ledger: tuple[int, int],
        at: datetime,
        note: str | None = None,
    ) -> tuple[StockLevel, StockCounted]:
        counted = self.book.count(
            sku, warehouse, counted_on_hand, count_id, counted_by, ledger, at, note
        )
        self._publish(None)
        return counted

    # -- orders: reserve, commit, release -------------------------------------------------------

    def reserve_for(self, placed: OrderPlaced, envelope: Envelope) -> None:
        self.book.reserve_for(placed, actor=f"event:{envelope.id}")
        self._publish(envelope)

    def commit_for(self, shipped: OrderShipped, envelope: Envelope) -> None:
        unknown = self.book.commit_for(shipped, f"event:{envelope.id}", self._uow.now)
        self._publish(envelope)
        if unknown is not None:
            self._unknown_reservation(unknown, envelope)

    def release_for(self, cancelled: OrderCancelled, envelope: Envelope) -> None:
        outcome = self.book.release_for(cancelled, actor=f"event:{envelope.id}")
        self._publish(envelope)
        if outcome == "after_commit":
            # The goods have left: nothing is held to release. If they come back, they are
            # received again (POST /stock/{sku}/{warehouse}/receipts).
            log.warning(
                "order cancelled after its stock was committed; nothing released",
                order_id=cancelled.order_id,
                event_id=envelope.id,
            )
        elif isinstance(outcome, UnknownReservation):
            self._unknown_reservation(outcome, envelope)

    def _unknown_reservation(self, unknown: UnknownReservation, envelope: Envelope) -> None:
        """A fact found while applying: raised here as an anomaly. Deterministic per order and
        action, so the same fact redelivered collapses downstream."""
        order_id, action, found = unknown.order_id, unknown.action, unknown.found
        identity = {"order_id": order_id, "action": action}
        anomaly = AnomalyDetected(
            rule=UNKNOWN_RESERVATION,
            fingerprint=fingerprint(UNKNOWN_RESERVATION, identity, 0),
            severity="P3",
            team="warehouse",
            labels={**identity, "found": found, "severity": "P3", "team": "warehouse"},
            summary=(
                f"order {order_id}: {envelope.type} asks to {action} its reservation,"
                f" but there is no live reservation (found: {found})"
            ),
            event_time=envelope.time,
            detected_at=self._uow.now,
            source_event_id=envelope.id,
        )
        self._uow.publish(
            self._topics.anomalies,
            anomaly,
            source=CONSUMER_SOURCE,
            subject=anomaly.fingerprint,
            cause=envelope,
            time=anomaly.detected_at,
        )
        self._uow.after_commit(metrics.ANOMALIES_DETECTED.labels(UNKNOWN_RESERVATION, "P3").inc)
        log.warning("no reservation to act on", order_id=order_id, action=action, found=found)


async def apply_order_events(uow: UnitOfWork, topics: Topics, events: Sequence[Event]) -> None:
    """Reserve stock for placed orders, commit it for shipped ones and release it for cancelled
    ones: each exactly once per order, guarded by the reservation's state (so the same fact
    under a new event id changes nothing either)."""
    inventory = Inventory(uow, topics)
    keys = {
        (line.sku, event.data.warehouse)
        for event in events
        if isinstance(event.data, OrderPlaced)
        for line in event.data.lines
    }
    await inventory.load(keys, [event.data.order_id for event in events])  # type: ignore[attr-defined]
    for event in events:
        if isinstance(event.data, OrderPlaced):
            inventory.reserve_for(event.data, event.envelope)
        elif isinstance(event.data, OrderShipped):
            inventory.commit_for(event.data, event.envelope)
        elif isinstance(event.data, OrderCancelled):
            inventory.release_for(event.data, event.envelope)
    await inventory.save()
