"""Inventory use cases: set, receive and count stock; reserve for a placed order, commit for a
shipped one, release for a cancelled one. Every stock change is a ledger row and an event."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from orderguard.services.inventory import repository
from orderguard.services.inventory.domain import (
    NoReservation,
    StockBook,
    StockKey,
    StockLevel,
)
from orderguard.services.inventory.rules import UnknownReservation
from orderguard.shared import metrics
from orderguard.shared.engine import Event
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.inventory import StockCounted
from orderguard.shared.events.orders import (
    OrderCancelled,
    OrderPlaced,
    OrderShipped,
    ReservationRequested,
)
from orderguard.shared.logging import get_logger
from orderguard.shared.topics import Topics
from orderguard.shared.uow import UnitOfWork

SOURCE = "/orderguard/inventory"
# Anomalies found while applying an event (not by a stream rule) come from here.
CONSUMER_SOURCE = "/orderguard/inventory/reservations"

log = get_logger(__name__)


class Inventory(StockBook):
    """The stock book of one unit of work: loaded once (locked), written back once with the
    ledger rows, and its events published then, each continuing the trace of its cause."""

    def __init__(
        self,
        uow: UnitOfWork,
        topics: Topics,
        unknown_reservation: UnknownReservation | None = None,
    ) -> None:
        """`unknown_reservation`: for the reservations use case, what it raises when a fact
        finds no reservation to act on."""
        super().__init__(uow.now)
        self._uow = uow
        self._topics = topics
        self._unknown = unknown_reservation

    async def load(self, keys: set[StockKey], order_ids: Sequence[str] = ()) -> None:
        """Lock the orders' reservations and every stock row they or `keys` touch."""
        self.reservations.update(await repository.reservations_of(self._uow.conn, order_ids))
        keys = keys | {(r.sku, r.warehouse) for lines in self.reservations.values() for r in lines}
        self.levels.update(await repository.lock_levels(self._uow.conn, keys))

    async def save(self) -> None:
        await repository.save_levels(
            self._uow.conn, [self.levels[key] for key in sorted(self.changed)]
        )
        await repository.append_ledger(self._uow.conn, self.ledger, self._uow.now)
        await repository.save_reservations(self._uow.conn, self.changed_reservations)
        counts: dict[str, int] = {}
        for entry in self.ledger:
            counts[entry.movement] = counts.get(entry.movement, 0) + 1
        for movement, n in counts.items():
            self._uow.after_commit(partial(metrics.STOCK_MOVEMENTS.labels(movement).inc, n))
        self.publish()

    def publish(self) -> None:
        """Write what the changes recorded to the unit of work, once."""
        for recorded in self.events:
            self._uow.publish(
                self._topics.inventory,
                recorded.event,
                source=SOURCE,
                subject=recorded.subject,
                cause=recorded.cause,
            )
        self.events.clear()
        for unknown, cause in self.unknown:
            self._unknown_reservation(unknown, cause)
        self.unknown.clear()
        for order_id, event_id in self.cancelled_after_commit:
            log.warning(
                "order cancelled after its stock was committed; nothing released",
                order_id=order_id,
                event_id=event_id,
            )
        self.cancelled_after_commit.clear()

    def _unknown_reservation(self, unknown: NoReservation, envelope: Envelope) -> None:
        """A fact found while applying: raised here (the declared `UnknownReservation`)."""
        assert self._unknown is not None, "reservations are applied with unknown_reservation"
        order_id, action, found = unknown.order_id, unknown.action, unknown.found
        anomaly = self._unknown.anomaly(order_id, action, found, envelope, self._uow.now)
        if anomaly is not None:
            self._uow.publish(
                self._topics.anomalies,
                anomaly,
                source=CONSUMER_SOURCE,
                subject=anomaly.fingerprint,
                cause=envelope,
                time=anomaly.detected_at,
            )
            self._uow.after_commit(
                metrics.ANOMALIES_DETECTED.labels(anomaly.rule, anomaly.severity).inc
            )
        log.warning("no reservation to act on", order_id=order_id, action=action, found=found)


async def reserve_stock_for_orders(
    uow: UnitOfWork,
    topics: Topics,
    unknown_reservation: UnknownReservation,
    events: Sequence[Event],
) -> None:
    """Reserve stock for placed orders, commit it for shipped ones and release it for cancelled
    ones: each exactly once per order, guarded by the reservation's state (so the same fact
    under a new event id changes nothing either)."""
    inventory = Inventory(uow, topics, unknown_reservation)
    keys = {
        (line.sku, event.data.warehouse)
        for event in events
        if isinstance(event.data, OrderPlaced | ReservationRequested)
        for line in event.data.lines
    }
    await inventory.load(keys, [event.data.order_id for event in events])  # type: ignore[attr-defined]
    for event in events:
        if isinstance(event.data, OrderPlaced | ReservationRequested):
            inventory.reserve_for(event.data, event.envelope)
        elif isinstance(event.data, OrderShipped):
            inventory.commit_for(event.data, event.envelope)
        elif isinstance(event.data, OrderCancelled):
            inventory.release_for(event.data, event.envelope)
    await inventory.save()


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
