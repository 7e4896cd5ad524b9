"""Inventory use cases: set stock, reserve for a placed order, release for a cancelled one."""

from __future__ import annotations

from orderguard.services.inventory import repository
from orderguard.services.inventory.domain import StockKey, StockLevel, lines_by_stock, shortages
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.inventory import (
    ReservationFailed,
    ReservationReleased,
    ReservedLine,
    StockChanged,
    StockReserved,
)
from orderguard.shared.events.orders import OrderCancelled, OrderPlaced
from orderguard.shared.tracing import child_of, current_traceparent
from orderguard.shared.uow import UnitOfWork

SOURCE = "/orderguard/inventory"


class Inventory:
    """Stock levels touched by one unit of work, loaded once and written back once."""

    def __init__(self, uow: UnitOfWork, topic: str) -> None:
        self._uow = uow
        self._topic = topic
        self.levels: dict[StockKey, StockLevel] = {}
        self._changed: set[StockKey] = set()
        self.reservations: dict[str, list[repository.ReservationRow]] = {}
        self._changed_reservations: list[repository.ReservationRow] = []

    async def load(self, keys: set[StockKey], order_ids: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        """Lock the orders' reservations and every stock row they or `keys` touch."""
        self.reservations.update(await repository.reservations_of(self._uow.conn, order_ids))
        keys = keys | {(row[1], row[2]) for rows in self.reservations.values() for row in rows}
        self.levels.update(await repository.lock_levels(self._uow.conn, keys))

    async def save(self) -> None:
        await repository.save_levels(
            self._uow.conn, [self.levels[key] for key in sorted(self._changed)]
        )
        await repository.save_reservations(self._uow.conn, self._changed_reservations)

    def _publish(
        self,
        event_type: str,
        subject: str,
        data: StockChanged | StockReserved | ReservationFailed | ReservationReleased,
        cause: Envelope | None,
    ) -> None:
        self._uow.publish(
            self._topic,
            Envelope(
                type=event_type,
                source=SOURCE,
                subject=subject,
                data=data.model_dump(mode="json"),
                traceparent=child_of(cause.traceparent) if cause else current_traceparent(),
            ),
        )

    def _change(
        self, level: StockLevel, cause: str, order_id: str | None, envelope: Envelope | None
    ) -> None:
        key = (level.sku, level.warehouse)
        self.levels[key] = level
        self._changed.add(key)
        self._publish(
            "inventory.stock_changed.v1",
            level.sku,
            StockChanged(
                sku=level.sku,
                warehouse=level.warehouse,
                on_hand=level.on_hand,
                reserved=level.reserved,
                available=level.available,
                low_stock_threshold=level.low_stock_threshold,
                cause=cause,  # type: ignore[arg-type]
                order_id=order_id,
            ),
            envelope,
        )

    def set_stock(
        self, sku: str, warehouse: str, on_hand: int, low_stock_threshold: int | None
    ) -> StockLevel:
        current = self.levels.get((sku, warehouse)) or StockLevel(sku, warehouse, on_hand=0)
        level = current.with_on_hand(on_hand, low_stock_threshold)
        self._change(level, "stock_set", None, None)
        return level

    def reserve_for(self, placed: OrderPlaced, envelope: Envelope) -> None:
        """All or nothing; once per order whatever is redelivered."""
        if placed.order_id in self.reservations:
            return
        wanted = lines_by_stock(
            ReservedLine(sku=line.sku, warehouse=placed.warehouse, quantity=line.quantity)
            for line in placed.lines
        )
        missing = shortages(self.levels, wanted)
        if missing:
            self.reservations[placed.order_id] = []
            self._publish(
                "inventory.reservation_failed.v1",
                placed.order_id,
                ReservationFailed(order_id=placed.order_id, shortages=missing),
                envelope,
            )
            return
        rows = []
        for (sku, warehouse), quantity in sorted(wanted.items()):
            self._change(
                self.levels[(sku, warehouse)].reserve(quantity),
                "reserved",
                placed.order_id,
                envelope,
            )
            rows.append((placed.order_id, sku, warehouse, quantity, "held"))
        self.reservations[placed.order_id] = rows
        self._changed_reservations += rows
        self._publish(
            "inventory.reserved.v1",
            placed.order_id,
            StockReserved(
                order_id=placed.order_id,
                lines=[
                    ReservedLine(sku=sku, warehouse=wh, quantity=qty) for _, sku, wh, qty, _ in rows
                ],
            ),
            envelope,
        )

    def release_for(self, cancelled: OrderCancelled, envelope: Envelope) -> None:
        """Release what is still held for the order; a second cancel finds nothing held."""
        held = [row for row in self.reservations.get(cancelled.order_id, []) if row[4] == "held"]
        if not held:
            return
        released = []
        for order_id, sku, warehouse, quantity, _ in held:
            level = self.levels.get((sku, warehouse))
            if level is not None:
                self._change(level.release(quantity), "released", order_id, envelope)
            released.append((order_id, sku, warehouse, quantity, "released"))
        self.reservations[cancelled.order_id] = released
        self._changed_reservations += released
        self._publish(
            "inventory.released.v1",
            cancelled.order_id,
            ReservationReleased(
                order_id=cancelled.order_id,
                lines=[
                    ReservedLine(sku=sku, warehouse=wh, quantity=qty)
                    for _, sku, wh, qty, _ in released
                ],
                reason=cancelled.reason,
            ),
            envelope,
        )
