"""Stage 3 of the router, the routing tree applied: where a firing anomaly goes on each route
it reaches (queue, channels, group, severity after the route's raise). Pure; the tree itself
and its file are `routing.py`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orderguard.services.notifier.routing import RouteMatch, RoutingTree
from orderguard.shared.events.anomalies import Severity


@dataclass(frozen=True, slots=True)
class Destination:
    """One place a routed anomaly went: kept, so that its resolution goes to the same places."""

    route: str
    queue: str
    channels: tuple[str, ...]
    group_key: str | None  # None: its own group, published at once
    severity: str
    is_default: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "queue": self.queue,
            "channels": list(self.channels),
            "group_key": self.group_key,
            "severity": self.severity,
            "is_default": self.is_default,
        }

    @classmethod
    def of_json(cls, data: Mapping[str, Any]) -> Destination:
        return cls(
            data["route"],
            data["queue"],
            tuple(data["channels"]),
            data.get("group_key"),
            data.get("severity") or "",
            bool(data.get("is_default", False)),
        )


def destinations(
    tree: RoutingTree, labels: Mapping[str, str], severity: Severity
) -> list[tuple[RouteMatch, Destination]]:
    """Every route the labels reach (never none: the root catches the rest), with where each
    sends the anomaly."""
    return [
        (
            match,
            Destination(
                match.route,
                match.queue,
                match.channels,
                match.group_key(labels),
                match.severity(severity),
                match.is_default,
            ),
        )
        for match in tree.route(labels)
    ]
