"""The after-sales repository in memory: what `services/aftersales/handlers.py` reads and writes."""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from orderguard.services.aftersales.domain import (
    Case,
    KnownOrder,
    RefundLine,
    TimelineEntry,
)
from orderguard.services.aftersales.repository import Attachment, OrderFact, Refund


class AftersalesRepository:
    """Stores copies, as a database would: a change not saved is not kept."""

    def __init__(self) -> None:
        self.orders: dict[str, KnownOrder] = {}
        self.cases: dict[str, Case] = {}
        self.timelines: dict[str, list[TimelineEntry]] = defaultdict(list)
        self.attachments_by_case: dict[str, list[Attachment]] = defaultdict(list)
        self.refunds: list[Refund] = []
        self.contents: dict[str, bytes] = {}

    async def remember_orders(self, conn: Any, facts: Sequence[OrderFact]) -> None:
        for fact in facts:
            known = self.orders.get(fact.order_id)
            if known is None:
                known = KnownOrder(
                    fact.order_id,
                    fact.customer_id,
                    fact.channel,
                    tuple(fact.lines),
                    None,
                    None,
                    None,
                    None,
                )
            self.orders[fact.order_id] = replace(
                known,
                placed_at=known.placed_at or fact.placed_at,
                paid_at=known.paid_at or fact.paid_at,
                paid_amount=known.paid_amount
                if known.paid_amount is not None
                else fact.paid_amount,
                phone=fact.phone or known.phone,
                lines=tuple(fact.lines) if fact.paid_at is not None else known.lines,
            )

    async def remember_delivery(
        self, conn: Any, order_id: str, shipment_id: str, delivered_at: datetime
    ) -> None:
        if order_id in self.orders and self.orders[order_id].delivered_at is None:
            self.orders[order_id] = replace(self.orders[order_id], delivered_at=delivered_at)

    async def get_order(
        self, conn: Any, order_id: str, for_update: bool = False
    ) -> KnownOrder | None:
        return self.orders.get(order_id)

    async def add_case(self, conn: Any, case: Case) -> None:
        assert case.case_id not in self.cases
        self.cases[case.case_id] = self._copy(case)

    async def save_case(self, conn: Any, case: Case) -> None:
        assert case.case_id in self.cases
        self.cases[case.case_id] = self._copy(case)

    async def get_case(self, conn: Any, case_id: str, for_update: bool = False) -> Case | None:
        found = self.cases.get(case_id)
        return self._copy(found) if found else None

    @staticmethod
    def _copy(case: Case) -> Case:
        stored = copy.deepcopy(case)
        stored.events.clear()
        return stored

    async def record(self, conn: Any, case_id: str, entries: Iterable[TimelineEntry]) -> None:
        self.timelines[case_id].extend(entries)

    async def timeline(self, conn: Any, case_id: str) -> list[TimelineEntry]:
        return list(self.timelines[case_id])

    async def add_attachment(self, conn: Any, attachment: Attachment) -> None:
        self.attachments_by_case[attachment.case_id].append(attachment)

    async def add_attachment_content(self, conn: Any, attachment_id: str, content: bytes) -> None:
        self.contents[attachment_id] = content

    async def attachment_with(self, conn: Any, case_id: str, sha256: str) -> Attachment | None:
        return next((a for a in self.attachments_by_case[case_id] if a.sha256 == sha256), None)

    async def attachments(self, conn: Any, case_id: str) -> list[Attachment]:
        return list(self.attachments_by_case[case_id])

    async def refunded_by_sku(self, conn: Any, order_id: str) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for refund in self.refunds:
            if refund.order_id == order_id:
                for line in refund.lines:
                    totals[line.sku] += line.amount
        return dict(totals)

    async def issued_lines(
        self, conn: Any, case_id: str, lines: Sequence[RefundLine]
    ) -> list[tuple[str, str, str]]:
        asked = {(line.sku, line.action) for line in lines}
        return [
            (line.sku, line.action, refund.refund_id)
            for refund in self.refunds
            if refund.case_id == case_id
            for line in refund.lines
            if (line.sku, line.action) in asked
        ]

    async def add_refund(self, conn: Any, refund: Refund) -> None:
        self.refunds.append(refund)

    async def refunds_of(self, conn: Any, case_id: str) -> list[Refund]:
        return [refund for refund in self.refunds if refund.case_id == case_id]
