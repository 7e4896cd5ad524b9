"""Engine consumers of the recycle bin: after-sales events and anomalies that move orders in
(or archive them), each applied once per order whatever is redelivered."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiokafka import TopicPartition

from orderguard.services.order.domain import Actor
from orderguard.services.order.recycle_bin import handlers
from orderguard.services.order.recycle_bin.domain import (
    Category,
    Cause,
    anomaly_categories,
    anomaly_category,
    anomaly_cause,
    case_category,
    case_cause,
    refund_cause,
)
from orderguard.shared.engine import Event
from orderguard.shared.events.aftersales import CaseClosed, CaseOpened, RefundIssued
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.logging import get_logger
from orderguard.shared.uow import UnitOfWork

log = get_logger(__name__)


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


class MoveOnAfterSalesEvents:
    """Refunds and return/refund/complaint/exchange cases move their order into the bin; a
    closed case archives it."""

    group = "order.recycle-bin.aftersales"
    event_types = frozenset({"refund.issued.v1", "case.opened.v1", "case.closed.v1"})

    topics: Sequence[str]

    def __init__(self, aftersales_topic: str, orders_topic: str) -> None:
        self.topics = [aftersales_topic]
        self._orders_topic = orders_topic
        self._actor = Actor("consumer", self.group)

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        locked = await handlers.lock_orders(
            uow,
            {event.data.order_id for event in events},  # type: ignore[attr-defined]
        )
        for event in events:
            data = event.data
            order = locked.get(data.order_id)  # type: ignore[attr-defined]
            if order is None:
                # After-sales also serves orders placed by outside storefronts: none of ours.
                log.info("after-sales event for an order not placed here", event_type=event.type)
                continue
            if isinstance(data, CaseClosed):
                await handlers.archive_for_closed_case(
                    uow,
                    self._orders_topic,
                    data.case_id,
                    data.order_id,
                    data.resolution,
                    self._actor,
                )
                continue
            cause = self._cause(event)
            if cause is not None:
                await handlers.move(uow, self._orders_topic, order, _told_by(cause, event))

    def _cause(self, event: Event) -> Cause | None:
        data = event.data
        at = event.envelope.time
        if isinstance(data, RefundIssued):
            return refund_cause(
                data.refund_id, data.case_id, data.amount, data.reason, self._actor, at
            )
        if isinstance(data, CaseOpened) and (category := case_category(data.case_type)):
            return case_cause(data.case_id, category, data.reason, self._actor, at)
        return None

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached: every batch reads and locks what it touches."""


class MoveOnAnomalies:
    """Anomalies of the configured rules whose labels name an order move that order in."""

    group = "order.recycle-bin.anomalies"
    event_types = frozenset({"anomaly.detected.v1"})

    topics: Sequence[str]

    def __init__(
        self, anomalies_topic: str, orders_topic: str, rule_categories: Mapping[str, str]
    ) -> None:
        self.topics = [anomalies_topic]
        self._orders_topic = orders_topic
        # Fails start-up with a clear message on an unknown category.
        self._categories: dict[str, Category] = anomaly_categories(rule_categories)

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        wanted: list[tuple[str, Cause]] = []
        for event in events:
            data = event.data
            assert isinstance(data, AnomalyDetected)
            found = anomaly_category(data.rule, data.status, data.labels, self._categories)
            if found is None:
                continue
            order_id, category = found
            cause = anomaly_cause(
                data.fingerprint,
                category,
                data.summary,
                Actor("rule", data.rule),
                event.envelope.time,
            )
            wanted.append((order_id, _told_by(cause, event)))
        if not wanted:
            return
        locked = await handlers.lock_orders(uow, {order_id for order_id, _ in wanted})
        for order_id, cause in wanted:
            if order_id in locked:
                await handlers.move(uow, self._orders_topic, locked[order_id], cause)
            else:
                log.info("anomaly names an order not placed here", order_id=order_id)

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        """Nothing cached."""
