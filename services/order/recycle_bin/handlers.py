"""Recycle bin use cases, each inside the caller's unit of work: move an order in, restore it,
archive it when its case closes or it stays quiet, purge its personal data after retention.

Every move is on the order's timeline and published on `orders.events` (through the outbox).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from orderguard.services.order import repository as orders
from orderguard.services.order.domain import Actor, TimelineEntry
from orderguard.services.order.handlers import SOURCE, OrderNotFound
from orderguard.services.order.recycle_bin import repository
from orderguard.services.order.recycle_bin.domain import (
    PURGED_FIELDS,
    BinEntry,
    Category,
    Cause,
    MoveOutcome,
    OrderFacts,
    anomaly_category,
    anomaly_cause,
    case_category,
    case_cause,
    move_to_recycle_bin,
    refund_cause,
)
from orderguard.shared import metrics
from orderguard.shared.engine import Event
from orderguard.shared.events.aftersales import CaseClosed, CaseOpened, RefundIssued
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.logging import get_logger
from orderguard.shared.uow import UnitOfWork

log = get_logger(__name__)


class NotInRecycleBin(LookupError):
    def __init__(self, order_id: str, last: BinEntry | None) -> None:
        super().__init__(f"order {order_id} is not in the recycle bin")
        self.order_id = order_id
        self.last = last


@dataclass(frozen=True, slots=True)
class Moved:
    outcome: MoveOutcome
    entry: BinEntry | None


def _count(uow: UnitOfWork, move: str, category: str) -> None:
    uow.after_commit(lambda: metrics.RECYCLE_BIN_MOVES.labels(move, category).inc())


async def _announce(
    uow: UnitOfWork, topic: str, entry: BinEntry, timeline: TimelineEntry, move: str
) -> None:
    """Publish the event the entry's move recorded, and put the move, told by it, on the
    order's timeline and in the counts."""
    [data] = entry.events
    entry.events.clear()
    envelope = uow.publish(topic, data, source=SOURCE, subject=entry.order_id)
    await orders.record(uow.conn, [(entry.order_id, timeline.told_by(envelope.type, envelope.id))])
    _count(uow, move, str(entry.category))


def _details(entry: BinEntry, **more: object) -> dict[str, object]:
    return {
        "entry_id": entry.entry_id,
        "category": str(entry.category),
        "bin_state": str(entry.state),
        **({"case_id": entry.case_id} if entry.case_id else {}),
        **more,
    }


async def lock_orders(uow: UnitOfWork, order_ids: set[str]) -> dict[str, OrderFacts]:
    """Lock every order a batch touches up front, in one statement, in id order."""
    return await repository.lock_orders(uow.conn, order_ids)


async def move(uow: UnitOfWork, topic: str, order: OrderFacts, cause: Cause) -> Moved:
    """Put a (locked) order in the bin for `cause`, add the cause to its entry, or do nothing."""
    open_entry = await repository.open_entry(uow.conn, order.order_id)
    seen = set() if cause.by_hand else await repository.seen_causes(uow.conn, order.order_id)
    outcome, entry = move_to_recycle_bin(order, open_entry, seen, cause)
    if outcome is MoveOutcome.ALREADY or entry is None:
        return Moved(MoveOutcome.ALREADY, entry)
    source = (
        {"source_event_type": cause.event_type, "source_event_id": cause.event_id}
        if cause.event_id
        else {}
    )
    if outcome is MoveOutcome.MOVED:
        await repository.add_entry(uow.conn, entry)
        await repository.add_cause(uow.conn, entry, cause)
        await _announce(
            uow,
            topic,
            entry,
            TimelineEntry(
                at=cause.at,
                what="moved_to_recycle_bin",
                actor=cause.actor,
                reason=cause.reason,
                details=_details(entry, **source),
            ),
            outcome.value,
        )
        log.info(
            "order moved to the recycle bin",
            order_id=order.order_id,
            entry_id=entry.entry_id,
            category=str(entry.category),
            actor=str(cause.actor),
        )
        return Moved(outcome, entry)
    await repository.save_entry(uow.conn, entry)
    await repository.add_cause(uow.conn, entry, cause)
    timeline = TimelineEntry(
        at=cause.at,
        what="recycle_bin_reason_added",
        actor=cause.actor,
        reason=cause.reason,
        event_type=cause.event_type,
        event_id=cause.event_id,
        details=_details(entry, added_category=str(cause.category)),
    )
    await orders.record(uow.conn, [(order.order_id, timeline)])
    _count(uow, outcome.value, str(cause.category))
    log.info(
        "reason added to a recycle bin entry",
        order_id=order.order_id,
        entry_id=entry.entry_id,
        category=str(cause.category),
    )
    return Moved(outcome, entry)


async def move_by_hand(uow: UnitOfWork, topic: str, order_id: str, cause: Cause) -> Moved:
    locked = await lock_orders(uow, {order_id})
    if order_id not in locked:
        raise OrderNotFound(order_id)
    return await move(uow, topic, locked[order_id], cause)


async def restore(
    uow: UnitOfWork, topic: str, order_id: str, actor: Actor, reason: str | None
) -> BinEntry:
    """in_bin -> restored: the order is back where it was (the bin never changes its status)."""
    locked = await lock_orders(uow, {order_id})
    if order_id not in locked:
        raise OrderNotFound(order_id)
    status = locked[order_id].status
    entry = await repository.open_entry(uow.conn, order_id)
    if entry is None:
        history = await repository.entries_of_order(uow.conn, order_id)
        raise NotInRecycleBin(order_id, history[0] if history else None)
    entry.restore(actor, reason, uow.now, order_status=status)
    await repository.save_entry(uow.conn, entry)
    timeline = TimelineEntry(
        at=uow.now,
        what="restored_from_recycle_bin",
        actor=actor,
        reason=reason,
        details=_details(entry, order_status=status, order_status_when_moved=entry.order_status),
    )
    await _announce(uow, topic, entry, timeline, "restored")
    log.info("order restored from the recycle bin", order_id=order_id, entry_id=entry.entry_id)
    return entry


async def archive(uow: UnitOfWork, topic: str, entry: BinEntry, actor: Actor, reason: str) -> None:
    """in_bin -> archived, for an entry whose order is locked."""
    entry.archive(actor, reason, uow.now)
    await repository.save_entry(uow.conn, entry)
    timeline = TimelineEntry(
        at=uow.now,
        what="archived_in_recycle_bin",
        actor=actor,
        reason=reason,
        details=_details(entry),
    )
    await _announce(uow, topic, entry, timeline, "archived")
    log.info("recycle bin entry archived", order_id=entry.order_id, entry_id=entry.entry_id)


async def archive_for_closed_case(
    uow: UnitOfWork, topic: str, case_id: str, order_id: str, resolution: str, actor: Actor
) -> int:
    """Archive what the case's closing ends; an order locked by the caller. Idempotent by state."""
    entries = await repository.open_entries_of_case(uow.conn, case_id, order_id)
    for entry in entries:
        await archive(uow, topic, entry, actor, f"case {case_id} closed: {resolution}")
    return len(entries)


async def archive_quiet_entries(
    uow: UnitOfWork, topic: str, quiet_period_s: float, limit: int
) -> int:
    """Archive entries without a case that had no new cause for the quiet period."""
    before = uow.now - timedelta(seconds=quiet_period_s)
    entries = await repository.lock_quiet_entries(uow.conn, before, limit)
    actor = Actor("rule", "recycle-bin.quiet-period")
    days = quiet_period_s / 86400
    for entry in entries:
        await archive(uow, topic, entry, actor, f"no case and no new cause for {days:g} days")
    return len(entries)


async def purge_past_retention(uow: UnitOfWork, topic: str, retention_s: float, limit: int) -> int:
    """Purge the personal data of orders archived longer than the retention; the entry, the
    order's non-personal facts and a purge record stay (the counts still see them)."""
    before = uow.now - timedelta(seconds=retention_s)
    entries = await repository.lock_entries_past_retention(uow.conn, before, limit)
    actor = Actor("rule", "recycle-bin.retention")
    for entry in entries:
        entry.purge(uow.now)
        await repository.save_entry(uow.conn, entry)
        await repository.purge_personal_data(uow.conn, entry, PURGED_FIELDS, uow.now)
        timeline = TimelineEntry(
            at=uow.now,
            what="personal_data_purged",
            actor=actor,
            reason=f"archived for longer than the retention ({retention_s / 86400:g} days)",
            details=_details(entry, purged_fields=list(PURGED_FIELDS)),
        )
        await _announce(uow, topic, entry, timeline, "purged")
        log.info("order personal data purged", order_id=entry.order_id, entry_id=entry.entry_id)
    return len(entries)


async def measure(uow: UnitOfWork) -> None:
    """Set the in-bin gauge from one indexed count per category."""
    found = await repository.in_bin_by_category(uow.conn)

    def publish() -> None:
        for category in Category:
            metrics.RECYCLE_BIN_IN_BIN.labels(category.value).set(found.get(category.value, 0))

    uow.after_commit(publish)


# -- moves told by other services' events (engine consumers) ---------------------------------


def _told_by(cause: Cause, event: Event) -> Cause:
    return Cause(
        cause.key,
        cause.category,
        cause.reason,
        cause.actor,
        cause.at,
        cause.case_id,
        event.type,
        event.id,
    )


def _aftersales_cause(event: Event, actor: Actor) -> Cause | None:
    data = event.data
    at = event.envelope.time
    if isinstance(data, RefundIssued):
        return refund_cause(data.refund_id, data.case_id, data.amount, data.reason, actor, at)
    if isinstance(data, CaseOpened) and (category := case_category(data.case_type)):
        return case_cause(data.case_id, category, data.reason, actor, at)
    return None


async def move_on_aftersales_events(
    uow: UnitOfWork, topic: str, actor: Actor, batch: Sequence[Event]
) -> None:
    """Refunds and return/refund/complaint/exchange cases move their order into the bin; a
    closed case archives it. Each applies once per order whatever is redelivered."""
    locked = await lock_orders(uow, {event.data.order_id for event in batch})  # type: ignore[attr-defined]
    for event in batch:
        data = event.data
        order = locked.get(data.order_id)  # type: ignore[attr-defined]
        if order is None:
            # After-sales also serves orders placed by outside storefronts: none of ours.
            log.info("after-sales event for an order not placed here", event_type=event.type)
            continue
        if isinstance(data, CaseClosed):
            await archive_for_closed_case(
                uow, topic, data.case_id, data.order_id, data.resolution, actor
            )
            continue
        cause = _aftersales_cause(event, actor)
        if cause is not None:
            await move(uow, topic, order, _told_by(cause, event))


async def move_on_anomalies(
    uow: UnitOfWork, topic: str, categories: Mapping[str, Category], batch: Sequence[Event]
) -> None:
    """Anomalies of the configured rules (`categories`: rule -> category) whose labels name an
    order move that order in."""
    wanted: list[tuple[str, Cause]] = []
    for event in batch:
        data = event.data
        assert isinstance(data, AnomalyDetected)
        found = anomaly_category(data.rule, data.status, data.labels, categories)
        if found is None:
            continue
        order_id, category = found
        cause = anomaly_cause(
            data.fingerprint, category, data.summary, Actor("rule", data.rule), event.envelope.time
        )
        wanted.append((order_id, _told_by(cause, event)))
    if not wanted:
        return
    locked = await lock_orders(uow, {order_id for order_id, _ in wanted})
    for order_id, cause in wanted:
        if order_id in locked:
            await move(uow, topic, locked[order_id], cause)
        else:
            log.info("anomaly names an order not placed here", order_id=order_id)
