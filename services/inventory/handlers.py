"""Inventory use cases: set, receive and count stock; reserve for a placed order, commit for a
shipped one, release for a cancelled one. Every stock change is a ledger row and an event."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Literal

from pydantic import BaseModel

from orderguard.services.inventory import repository
from orderguard.services.inventory.domain import (
    LedgerEntry,
    ReservationLine,
    StockKey,
    StockLevel,
    decide,
    lines_by_stock,
    shortages,
)
from orderguard.shared import metrics
from orderguard.shared.detection.rule import anomaly_envelope, fingerprint
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.events.inventory import (
    Movement,
    ReservationFailed,
    ReservationReleased,
    ReservedLine,
    StockChanged,
    StockCommitted,
    StockCounted,
    StockReserved,
)
from orderguard.shared.events.orders import OrderCancelled, OrderPlaced, OrderShipped
from orderguard.shared.logging import get_logger
from orderguard.shared.topics import Topics
from orderguard.shared.uow import UnitOfWork

SOURCE = "/orderguard/inventory"
# Anomalies found while applying an event (not by a stream rule) come from here.
CONSUMER_SOURCE = "/orderguard/inventory/reservations"
UNKNOWN_RESERVATION = "inventory.unknown_reservation"

# Movement -> the coarser `cause` of inventory.stock_changed.v1 (its published enum).
CAUSES: dict[Movement, str] = {
    "stock_set": "stock_set",
    "received": "stock_set",
    "reserved": "reserved",
    "released": "released",
    "committed": "committed",
    "adjusted": "adjusted",
}

log = get_logger(__name__)


class Inventory:
    """Stock levels and reservations touched by one unit of work, loaded once (locked) and
    written back once, with the ledger rows and events their changes cause."""

    def __init__(self, uow: UnitOfWork, topics: Topics) -> None:
        self._uow = uow
        self._topics = topics
        self.levels: dict[StockKey, StockLevel] = {}
        self._changed: set[StockKey] = set()
        self.ledger: list[LedgerEntry] = []
        self.reservations: dict[str, list[ReservationLine]] = {}
        self._changed_reservations: list[ReservationLine] = []

    async def load(self, keys: set[StockKey], order_ids: Sequence[str] = ()) -> None:
        """Lock the orders' reservations and every stock row they or `keys` touch."""
        self.reservations.update(await repository.reservations_of(self._uow.conn, order_ids))
        keys = keys | {(r.sku, r.warehouse) for lines in self.reservations.values() for r in lines}
        self.levels.update(await repository.lock_levels(self._uow.conn, keys))

    async def save(self) -> None:
        await repository.save_levels(
            self._uow.conn, [self.levels[key] for key in sorted(self._changed)]
        )
        await repository.append_ledger(self._uow.conn, self.ledger, self._uow.now)
        await repository.save_reservations(self._uow.conn, self._changed_reservations)
        counts: dict[str, int] = {}
        for entry in self.ledger:
            counts[entry.movement] = counts.get(entry.movement, 0) + 1
        for movement, n in counts.items():
            self._uow.after_commit(partial(metrics.STOCK_MOVEMENTS.labels(movement).inc, n))

    # -- publishing ---------------------------------------------------------------------------

    def _publish(self, topic: str, subject: str, data: BaseModel, cause: Envelope | None) -> None:
        self._uow.publish_event(topic, data, source=SOURCE, subject=subject, cause=cause)

    def _change(
        self,
        level: StockLevel,
        movement: Movement | None,
        cause: Envelope | None,
        order_id: str | None = None,
        reference: str | None = None,
        actor: str | None = None,
        note: str | None = None,
    ) -> StockLevel:
        """Apply a new balance: its ledger row (`movement` None: nothing moved, e.g. a new
        threshold), its stock_changed event."""
        key = (level.sku, level.warehouse)
        before = self.levels.get(key) or StockLevel(level.sku, level.warehouse, on_hand=0)
        self.levels[key] = level
        self._changed.add(key)
        if movement is not None:
            entry = LedgerEntry.between(before, level, movement, order_id, reference, actor, note)
            if entry.on_hand_delta or entry.reserved_delta or movement == "adjusted":
                self.ledger.append(entry)  # a count that confirms the balance is recorded too
        self._publish(
            self._topics.inventory,
            level.sku,
            StockChanged(
                sku=level.sku,
                warehouse=level.warehouse,
                on_hand=level.on_hand,
                reserved=level.reserved,
                available=level.available,
                low_stock_threshold=level.low_stock_threshold,
                cause=CAUSES[movement or "stock_set"],  # type: ignore[arg-type]
                order_id=order_id,
                movement=movement,
            ),
            cause,
        )
        return level

    def _current(self, sku: str, warehouse: str) -> StockLevel:
        return self.levels.get((sku, warehouse)) or StockLevel(sku, warehouse, on_hand=0)

    # -- people: set, receive, count ------------------------------------------------------------

    def set_stock(
        self,
        sku: str,
        warehouse: str,
        on_hand: int,
        low_stock_threshold: int | None,
        actor: str | None = None,
    ) -> StockLevel:
        current = self._current(sku, warehouse)
        level = current.with_on_hand(on_hand, low_stock_threshold)
        return self._change(level, "stock_set", None, actor=actor)

    def set_threshold(
        self, sku: str, warehouse: str, low_stock_threshold: int | None, actor: str | None = None
    ) -> StockLevel:
        """The SKU's own low-stock threshold (None: the configured one); not a movement, but
        published so the detector re-evaluates with it."""
        level = self._current(sku, warehouse).with_threshold(low_stock_threshold)
        return self._change(level, None, None, actor=actor)

    def receive(
        self,
        sku: str,
        warehouse: str,
        quantity: int,
        receipt_id: str,
        actor: str,
        note: str | None = None,
    ) -> StockLevel:
        level = self._current(sku, warehouse).receive(quantity)
        return self._change(level, "received", None, reference=receipt_id, actor=actor, note=note)

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
        """On hand becomes what was counted (an `adjusted` movement); the count is published
        with the balance and the ledger sums it is checked against (`ledger`: the sums read
        before this count, with the stock row locked)."""
        before = self._current(sku, warehouse)
        counted = StockCounted(
            count_id=count_id,
            sku=sku,
            warehouse=warehouse,
            counted_on_hand=counted_on_hand,
            expected_on_hand=before.on_hand,
            ledger_on_hand=ledger[0],
            reserved=before.reserved,
            ledger_reserved=ledger[1],
            counted_by=counted_by,
            counted_at=at,
        )
        level = self._change(
            before.counted(counted_on_hand),
            "adjusted",
            None,
            reference=count_id,
            actor=counted_by,
            note=note,
        )
        self._publish(self._topics.inventory, sku, counted, None)
        return level, counted

    # -- orders: reserve, commit, release -------------------------------------------------------

    def reserve_for(self, placed: OrderPlaced, envelope: Envelope) -> None:
        """All or nothing; once per order whatever is redelivered (its lines, held or failed,
        are recorded)."""
        if placed.order_id in self.reservations:
            return
        wanted = lines_by_stock(
            ReservedLine(sku=line.sku, warehouse=placed.warehouse, quantity=line.quantity)
            for line in placed.lines
        )
        missing = shortages(self.levels, wanted)
        state: Literal["held", "failed"] = "failed" if missing else "held"
        lines = [
            ReservationLine(placed.order_id, sku, warehouse, quantity, state)
            for (sku, warehouse), quantity in sorted(wanted.items())
        ]
        self.reservations[placed.order_id] = lines
        self._changed_reservations += lines
        if missing:
            self._publish(
                self._topics.inventory,
                placed.order_id,
                ReservationFailed(order_id=placed.order_id, shortages=missing),
                envelope,
            )
            return
        for line in lines:
            key = (line.sku, line.warehouse)
            self._change(
                self.levels[key].reserve(line.quantity),
                "reserved",
                envelope,
                order_id=placed.order_id,
                actor=f"event:{envelope.id}",
            )
        self._publish(
            self._topics.inventory,
            placed.order_id,
            StockReserved(order_id=placed.order_id, lines=[line.line for line in lines]),
            envelope,
        )

    def commit_for(self, shipped: OrderShipped, envelope: Envelope) -> None:
        """The held lines leave the warehouse: on hand and reserved drop, once per order."""
        lines = self.reservations.get(shipped.order_id, [])
        decision = decide(lines, "commit")
        if decision == "unknown":
            self._unknown_reservation("commit", shipped.order_id, lines, envelope)
            return
        if decision != "apply":
            return
        committed = []
        for line in lines:
            key = (line.sku, line.warehouse)
            self._change(
                self._current(*key).commit(line.quantity),
                "committed",
                envelope,
                order_id=shipped.order_id,
                reference=shipped.shipment_id,
                actor=f"event:{envelope.id}",
            )
            committed.append(line.commit())
        self.reservations[shipped.order_id] = committed
        self._changed_reservations += committed
        self._publish(
            self._topics.inventory,
            shipped.order_id,
            StockCommitted(
                order_id=shipped.order_id,
                shipment_id=shipped.shipment_id,
                lines=[line.line for line in committed],
                committed_at=self._uow.now,
            ),
            envelope,
        )

    def release_for(self, cancelled: OrderCancelled, envelope: Envelope) -> None:
        """Release what is still held for the order (whatever the reason: by a person, a
        payment timeout, ...); a second cancel finds nothing held."""
        lines = self.reservations.get(cancelled.order_id, [])
        decision = decide(lines, "release")
        if decision == "unknown":
            self._unknown_reservation("release", cancelled.order_id, lines, envelope)
            return
        if decision == "after_commit":
            # The goods have left: nothing is held to release. If they come back, they are
            # received again (POST /stock/{sku}/{warehouse}/receipts).
            log.warning(
                "order cancelled after its stock was committed; nothing released",
                order_id=cancelled.order_id,
                event_id=envelope.id,
            )
            return
        if decision != "apply":
            return
        released = []
        for line in lines:
            key = (line.sku, line.warehouse)
            self._change(
                self._current(*key).release(line.quantity),
                "released",
                envelope,
                order_id=cancelled.order_id,
                actor=f"event:{envelope.id}",
                note=cancelled.reason[:200],
            )
            released.append(line.release())
        self.reservations[cancelled.order_id] = released
        self._changed_reservations += released
        self._publish(
            self._topics.inventory,
            cancelled.order_id,
            ReservationReleased(
                order_id=cancelled.order_id,
                lines=[line.line for line in released],
                reason=cancelled.reason,
            ),
            envelope,
        )

    def _unknown_reservation(
        self,
        action: Literal["commit", "release"],
        order_id: str,
        lines: list[ReservationLine],
        envelope: Envelope,
    ) -> None:
        """A fact found while applying: raised here, through the detectors' anomaly envelope.
        Deterministic per order and action, so the same fact redelivered collapses downstream."""
        found = ",".join(sorted({line.state for line in lines})) or "none"
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
            self._topics.anomalies, anomaly_envelope(anomaly, CONSUMER_SOURCE, envelope)
        )
        self._uow.after_commit(metrics.ANOMALIES_DETECTED.labels(UNKNOWN_RESERVATION, "P3").inc)
        log.warning("no reservation to act on", order_id=order_id, action=action, found=found)


# -- use cases the API runs, each in the caller's unit of work --------------------------------


async def set_stock(
    uow: UnitOfWork,
    topics: Topics,
    sku: str,
    warehouse: str,
    on_hand: int,
    low_stock_threshold: int | None,
    actor: str,
) -> StockLevel:
    """On hand and the SKU's own threshold set by hand (a `stock_set` movement)."""
    inventory = Inventory(uow, topics)
    await inventory.load({(sku, warehouse)})
    level = inventory.set_stock(sku, warehouse, on_hand, low_stock_threshold, actor=actor)
    await inventory.save()
    return level


async def set_threshold(
    uow: UnitOfWork,
    topics: Topics,
    sku: str,
    warehouse: str,
    low_stock_threshold: int | None,
    actor: str,
) -> StockLevel | None:
    """The SKU's own low-stock threshold; None when no stock of it is recorded there."""
    inventory = Inventory(uow, topics)
    await inventory.load({(sku, warehouse)})
    if (sku, warehouse) not in inventory.levels:
        return None
    level = inventory.set_threshold(sku, warehouse, low_stock_threshold, actor=actor)
    await inventory.save()
    return level


async def receive_stock(
    uow: UnitOfWork,
    topics: Topics,
    sku: str,
    warehouse: str,
    quantity: int,
    receipt_id: str,
    actor: str,
    note: str | None,
) -> StockLevel:
    """Goods received into the warehouse (a `received` movement)."""
    inventory = Inventory(uow, topics)
    await inventory.load({(sku, warehouse)})
    level = inventory.receive(sku, warehouse, quantity, receipt_id, actor, note)
    await inventory.save()
    return level


async def count_stock(
    uow: UnitOfWork,
    topics: Topics,
    sku: str,
    warehouse: str,
    counted_on_hand: int,
    count_id: str,
    counted_by: str,
    note: str | None,
) -> tuple[StockLevel, StockCounted]:
    """A stock count: on hand becomes what was counted, checked against the ledger's sums."""
    inventory = Inventory(uow, topics)
    await inventory.load({(sku, warehouse)})  # locks the row: the sums below hold
    ledger = await repository.ledger_sums(uow.conn, sku, warehouse)
    level, counted = inventory.count(
        sku, warehouse, counted_on_hand, count_id, counted_by, ledger, uow.now, note=note
    )
    await inventory.save()
    return level, counted
