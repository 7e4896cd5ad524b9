"""The routing pipeline over the memory store: what the live router does, without tables."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from orderguard.services.notifier.router.group import Group
from orderguard.services.notifier.router.memory_store import MemoryStore, run_now
from orderguard.services.notifier.router.pipeline import Arrival, RoutingPipeline
from orderguard.services.notifier.router.route import Destination
from orderguard.services.notifier.router.store import AnomalyState, Hold
from orderguard.services.notifier.routing import RouteMatch, parse_routing
from orderguard.shared.events.anomalies import AnomalyDetected

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
TREE = parse_routing(
    textwrap.dedent(
        """
        route:
          queue: customer_service
          routes:
            - name: warehouse-stock
              matchers: ['rule="stock.low"']
              queue: warehouse
              channels: [in_app, slack]
              raise_severity_to: P2
        """
    ),
    "t.yaml",
)


class Outlet:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, Destination, str]] = []
        self.counted: list[tuple[str, str]] = []

    def publish(
        self, anomaly: AnomalyDetected, to: Destination, traceparent: str | None, key: str
    ) -> None:
        self.published.append((anomaly.fingerprint, anomaly.status, to, key))

    def count(self, queue: str, outcome: str) -> None:
        self.counted.append((queue, outcome))

    def held(self, state: AnomalyState, hold: Hold, after_routing: bool) -> None: ...

    def released(self, state: AnomalyState, reason: str) -> None: ...

    def routed(
        self, anomaly: AnomalyDetected, matches: Sequence[RouteMatch], event_id: str
    ) -> None: ...

    def flushed(self, group: Group, kind: str, published: int) -> None: ...

    def note(self, what: str, **fields: Any) -> None: ...


def anomaly(fingerprint: str, status: str = "firing") -> AnomalyDetected:
    return AnomalyDetected(
        rule="stock.low",
        fingerprint=fingerprint,
        status=status,  # type: ignore[arg-type]
        severity="P3",
        team="warehouse",
        labels={"sku": "X-1", "warehouse": "main"},
        summary="SKU X-1 in main: 2 available, below its threshold of 5",
        event_time=NOW,
        detected_at=NOW,
        source_event_id="e-1",
    )


def arrive(store: MemoryStore, outlet: Outlet, *anomalies: AnomalyDetected) -> None:
    pipeline = RoutingPipeline(store, TREE, outlet, NOW)
    run_now(pipeline.arrive([Arrival(a, f"ev-{i}") for i, a in enumerate(anomalies)]))


def test_copies_of_a_fingerprint_in_one_batch_are_routed_once_to_the_route() -> None:
    store, outlet = MemoryStore(), Outlet()
    arrive(store, outlet, anomaly("fp-1"), anomaly("fp-2"), anomaly("fp-1"))
    assert [(fp, status, key) for fp, status, _, key in outlet.published] == [
        ("fp-1", "firing", "fp-1"),
        ("fp-2", "firing", "fp-2"),
    ]
    to = outlet.published[0][2]
    assert (to.route, to.queue, to.channels, to.group_key, to.severity) == (
        "warehouse-stock",
        "warehouse",
        ("in_app", "slack"),
        None,
        "P2",  # raised by the route
    )
    assert outlet.counted == [
        ("warehouse", "routed"),
        ("warehouse", "routed"),
        ("warehouse", "duplicate"),
    ]


def test_a_resolution_goes_where_the_firing_went_once() -> None:
    store, outlet = MemoryStore(), Outlet()
    arrive(store, outlet, anomaly("fp-1"))
    arrive(store, outlet, anomaly("fp-1", "resolved"), anomaly("fp-1", "resolved"))
    arrive(store, outlet, anomaly("fp-9", "resolved"))  # never seen firing
    assert [(fp, status) for fp, status, _, _ in outlet.published] == [
        ("fp-1", "firing"),
        ("fp-1", "resolved"),
    ]
    assert outlet.counted == [
        ("warehouse", "routed"),
        ("warehouse", "resolved"),
        ("warehouse", "duplicate"),  # the resolution's second copy
        ("none", "resolved_unknown"),
    ]


def test_the_memory_store_tells_the_backtest_clock_when_a_group_is_due() -> None:
    grouped = parse_routing(
        "route: {queue: warehouse, group_by: [warehouse], group_wait: 30s}\n", "g.yaml"
    )
    store, outlet = MemoryStore(), Outlet()
    run_now(RoutingPipeline(store, grouped, outlet, NOW).arrive([Arrival(anomaly("fp-1"), "e")]))
    assert outlet.published == [] and store.next_due() == NOW + timedelta(seconds=30)
    later = RoutingPipeline(store, grouped, outlet, NOW + timedelta(seconds=30))
    assert run_now(later.flush_due_groups(10)) == 1
    assert [(fp, to.group_key) for fp, _, to, _ in outlet.published] == [
        ("fp-1", 'root:{warehouse="main"}')
    ]
    assert store.next_due() is None
