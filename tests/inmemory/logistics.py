"""The logistics repository in memory: what `services/logistics/handlers.py` reads and writes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from orderguard.services.logistics.domain import Scan, Shipment


class LogisticsRepository:
    def __init__(self) -> None:
        self.shipments: dict[str, Shipment] = {}
        self.tracking: dict[tuple[str, str], tuple[str, datetime]] = {}
        self.scans: dict[tuple[str, str], tuple[str, Scan, bool]] = {}
        self.history: list[tuple[str, datetime, str, dict[str, Any]]] = []
        self.receipts: list[tuple[str, str, str]] = []

    async def lock_shipments(self, conn: Any, shipment_ids: Iterable[str]) -> dict[str, Shipment]:
        return {i: self.shipments[i] for i in sorted(set(shipment_ids)) if i in self.shipments}

    async def shipment(self, conn: Any, shipment_id: str) -> Shipment | None:
        return self.shipments.get(shipment_id)

    async def shipments_of_order(self, conn: Any, order_id: str) -> list[Shipment]:
        return [s for s in self.shipments.values() if s.order_id == order_id]

    async def save_shipments(self, conn: Any, shipments: Iterable[Shipment]) -> None:
        for shipment in shipments:  # frozen values: a stored one never changes under us
            self.shipments[shipment.shipment_id] = shipment

    async def add_tracking(self, conn: Any, rows: Iterable[tuple[str, str, str, datetime]]) -> None:
        for carrier, number, shipment_id, at in rows:
            self.tracking.setdefault((carrier, number), (shipment_id, at))

    async def tracking_owner(self, conn: Any, carrier: str, tracking_number: str) -> str | None:
        owner = self.tracking.get((carrier, tracking_number))
        return owner[0] if owner else None

    async def shipments_by_tracking(
        self, conn: Any, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        return {key: self.tracking[key][0] for key in set(keys) if key in self.tracking}

    async def tracking_of(self, conn: Any, shipment_id: str) -> list[Mapping[str, Any]]:
        return [
            {"carrier": carrier, "tracking_number": number, "assigned_at": at}
            for (carrier, number), (owner, at) in self.tracking.items()
            if owner == shipment_id
        ]

    async def applied_scans(
        self, conn: Any, keys: Iterable[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        return set(keys) & set(self.scans)

    async def add_scans(self, conn: Any, scans: Iterable[tuple[str, Scan, bool]]) -> None:
        for shipment_id, scan, changed in scans:
            self.scans[(scan.carrier, scan.scan_id)] = (shipment_id, scan, changed)

    async def add_history(
        self, conn: Any, entries: Iterable[tuple[str, datetime, str, dict[str, Any]]]
    ) -> None:
        self.history.extend(entries)

    async def lock_owed_compensation(
        self,
        conn: Any,
        now: datetime,
        overdue_after_s: float,
        stalled_after_s: float,
        limit: int,
    ) -> list[Shipment]:
        return [
            s
            for s in self.shipments.values()
            if s.delay_to_compensate(now, overdue_after_s, stalled_after_s) is not None
        ][:limit]

    async def webhook_receipt_seen(
        self, conn: Any, carrier: str, scan_id: str, signature: str
    ) -> str | None:
        for seen_carrier, seen_scan, seen_signature in self.receipts:
            if seen_signature == signature:
                return "signature"
            if (seen_carrier, seen_scan) == (carrier, scan_id):
                return "scan"
        return None

    async def add_webhook_receipt(
        self, conn: Any, carrier: str, scan_id: str, signature: str
    ) -> None:
        self.receipts.append((carrier, scan_id, signature))
