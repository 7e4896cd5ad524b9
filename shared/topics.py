"""Topic names, in one place. A prefix lets deployments share a cluster."""

from __future__ import annotations

from dataclasses import dataclass

TEAMS = ("warehouse", "logistics", "finance", "customer_service", "risk")

BASE_TOPICS = (
    "orders.events",
    "inventory.events",
    "logistics.events",
    "aftersales.events",
    "payments.events",
    "notifications.requests",
    "anomalies.detected",
    *(f"queues.{team}" for team in TEAMS),
    "carriers.scans",
    "notifications.dead",
    "work_items.events",
)


@dataclass(frozen=True)
class Topics:
    prefix: str = ""

    def name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    @property
    def orders(self) -> str:
        return self.name("orders.events")

    @property
    def inventory(self) -> str:
        return self.name("inventory.events")

    @property
    def anomalies(self) -> str:
        return self.name("anomalies.detected")

    @property
    def aftersales(self) -> str:
        return self.name("aftersales.events")

    @property
    def logistics(self) -> str:
        return self.name("logistics.events")

    @property
    def carrier_scans(self) -> str:
        return self.name("carriers.scans")

    @property
    def notification_requests(self) -> str:
        return self.name("notifications.requests")

    @property
    def notifications_dead(self) -> str:
        return self.name("notifications.dead")

    @property
    def work_items(self) -> str:
        return self.name("work_items.events")

    def queue(self, team: str) -> str:
        return self.name(f"queues.{team}")

    def all(self) -> list[str]:
        return [self.name(base) for base in BASE_TOPICS]

    @staticmethod
    def dead_letter(topic: str, group: str) -> str:
        return f"{topic}.dlq.{group}"
