"""The live router's store on the real PostgreSQL decides every batch exactly as the memory
store does (the backtests' store, which keeps every change as it is made): the same anomalies
published, counted, held and released, and the same memory afterwards — with copies of a
fingerprint, a raise and its resolution, a silence and inhibitions in one batch. And a batch
costs the same few statements however many anomalies it holds."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from testkit import CountingConnection

from orderguard.services.notifier import repository
from orderguard.services.notifier.bootstrap import DEFINITION as NOTIFIER
from orderguard.services.notifier.router.group import Group
from orderguard.services.notifier.router.memory_store import MemoryStore, run_now
from orderguard.services.notifier.router.pipeline import Arrival, RoutingPipeline
from orderguard.services.notifier.router.postgres_store import PostgresStore
from orderguard.services.notifier.router.route import Destination
from orderguard.services.notifier.router.silence import Silence, Silenced
from orderguard.services.notifier.router.store import AnomalyState, Hold
from orderguard.services.notifier.routing import Matcher, RouteMatch, RoutingTree, parse_routing
from orderguard.shared.db import apply_migrations, create_pool
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.settings import Settings
from orderguard.shared.uow import UnitOfWork

SCHEMA = "notifier"
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
TREE = parse_routing(
    textwrap.dedent(
        """
        route:
          queue: customer_service
          group_wait: 0s
          group_interval: 0s
          routes:
            - name: warehouse-stock
              matchers: ['rule="stock.low"']
              queue: warehouse
              group_by: [warehouse]
            - name: logistics
              matchers: ['rule=~"shipment\\\\..+"']
              queue: logistics
              group_by: [carrier]
              group_wait: 30s
              group_interval: 10s
        inhibit_rules:
          - name: carrier-outage
            source_matchers: ['rule="shipment.carrier_outage"']
            target_matchers: ['rule="shipment.stalled"']
            equal: [carrier]
        """
    ),
    "batches.yaml",
)
SILENCE = Silence(
    id=uuid.UUID(int=7),
    matchers=(Matcher.parse('warehouse="east"'),),
    author="ops",
    comment="stocktake in east",
    starts_at=T0 - timedelta(hours=1),
    ends_at=T0 + timedelta(minutes=5),
    created_at=T0 - timedelta(hours=1),
)


def low(fp: str, warehouse: str = "main", status: str = "firing") -> AnomalyDetected:
    return _anomaly(fp, "stock.low", status, team="warehouse", sku=fp, warehouse=warehouse)


def shipment(fp: str, rule: str, status: str = "firing") -> AnomalyDetected:
    return _anomaly(fp, rule, status, team="logistics", carrier="X", shipment_id=fp)


def _anomaly(fp: str, rule: str, status: str, team: str, **labels: str) -> AnomalyDetected:
    return AnomalyDetected(
        rule=rule,
        fingerprint=fp,
        status=status,  # type: ignore[arg-type]
        severity="P3",
        team=team,  # type: ignore[arg-type]
        labels=labels,
        summary=f"{rule} {fp}",
        event_time=T0,
        detected_at=T0,
        source_event_id=f"src-{fp}",
    )


# Batches at one second apart, then a flush of the due groups after the silence has ended.
BATCHES: list[list[AnomalyDetected]] = [
    [
        low("A"),
        low("A"),  # a copy in the same batch
        low("B"),
        shipment("S1", "shipment.stalled"),
        low("C", warehouse="east"),  # silenced
        low("D"),
        low("D", status="resolved"),  # raised and resolved in one batch
    ],
    [
        shipment("S2", "shipment.stalled"),
        shipment("O", "shipment.carrier_outage"),  # inhibits S1 and S2, routed before it
        shipment("S3", "shipment.stalled"),  # inhibited by O, earlier in the batch
        low("A", status="resolved"),
        low("A", status="resolved"),
        low("E", status="resolved"),  # never seen firing
    ],
    [
        shipment("O", "shipment.carrier_outage", status="resolved"),  # S1, S2, S3 routed again
        shipment("S2", "shipment.stalled", status="resolved"),
        low("B", status="resolved"),
        low("C", warehouse="east", status="resolved"),  # resolved while silenced
        low("F", warehouse="east"),  # silenced, released when the silence ends
    ],
]


class Outlet:
    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    def publish(
        self, anomaly: AnomalyDetected, to: Destination, traceparent: str | None, key: str
    ) -> None:
        self.log.append(("publish", anomaly.fingerprint, anomaly.status, to, key))

    def count(self, queue: str, outcome: str) -> None:
        self.log.append(("count", queue, outcome))

    def held(self, state: AnomalyState, hold: Hold, after_routing: bool) -> None:
        self.log.append(("held", state.fingerprint, type(hold).__name__, after_routing))

    def released(self, state: AnomalyState, reason: str) -> None:
        self.log.append(("released", state.fingerprint, reason))

    def routed(
        self, anomaly: AnomalyDetected, matches: Sequence[RouteMatch], event_id: str
    ) -> None:
        self.log.append(("routed", anomaly.fingerprint, event_id))

    def flushed(self, group: Group, kind: str, published: int) -> None:
        self.log.append(("flushed", group.key, kind, published))

    def note(self, what: str, **fields: Any) -> None:
        self.log.append(("note", what))


def arrivals(batch: list[AnomalyDetected], n: int) -> list[Arrival]:
    return [Arrival(a, f"ev-{n}-{i}") for i, a in enumerate(batch)]


def in_memory(tree: RoutingTree) -> tuple[Outlet, MemoryStore]:
    store, outlet = MemoryStore([SILENCE]), Outlet()
    for n, batch in enumerate(BATCHES):
        now = T0 + timedelta(seconds=n)
        run_now(RoutingPipeline(store, tree, outlet, now).arrive(arrivals(batch, n)))
    later = T0 + timedelta(minutes=10)
    run_now(RoutingPipeline(store, tree, outlet, later).flush_due_groups(100))
    run_now(RoutingPipeline(store, tree, outlet, later).release_silenced(100))
    run_now(RoutingPipeline(store, tree, outlet, later).flush_due_groups(100))
    return outlet, store


@pytest.fixture
async def pool(settings: Settings) -> Any:
    await apply_migrations(settings.database_url, SCHEMA, NOTIFIER.migrations)
    pool = await create_pool(settings.database_url, SCHEMA)
    yield pool
    await pool.close()


async def live(pool: asyncpg.Pool, tree: RoutingTree) -> Outlet:
    async with pool.acquire() as conn:
        await repository.insert_silence(
            conn,
            SILENCE.id,
            ['warehouse="east"'],
            SILENCE.author,
            SILENCE.comment,
            SILENCE.starts_at,
            SILENCE.ends_at,
        )
    outlet = Outlet()
    for n, batch in enumerate(BATCHES):
        async with UnitOfWork(pool, SCHEMA) as uow:
            pipeline = RoutingPipeline(
                PostgresStore(uow.conn), tree, outlet, T0 + timedelta(seconds=n)
            )
            await pipeline.arrive(arrivals(batch, n))
            await uow.commit()
    later = T0 + timedelta(minutes=10)
    for step in ("flush_due_groups", "release_silenced", "flush_due_groups"):
        async with UnitOfWork(pool, SCHEMA) as uow:
            pipeline = RoutingPipeline(PostgresStore(uow.conn), tree, outlet, later)
            await getattr(pipeline, step)(100)
            await uow.commit()
    return outlet


async def test_the_live_store_decides_each_batch_as_the_memory_store_does(pool: Any) -> None:
    expected, memory = in_memory(TREE)
    outlet = await live(pool, TREE)
    assert outlet.log == expected.log
    # What the batches show, spelled out (the comparison above holds them for both stores).
    published = [(e[1], e[2], e[3].queue) for e in outlet.log if e[0] == "publish"]
    assert published.count(("A", "firing", "warehouse")) == 1
    assert ("D", "firing", "warehouse") in published and ("D", "resolved", "warehouse") in published
    assert ("C", "firing", "warehouse") not in published  # silenced, then resolved
    assert ("F", "firing", "warehouse") in published  # released after its silence
    held = sorted((e[1], e[2], e[3]) for e in outlet.log if e[0] == "held")
    assert held == [
        ("C", "Silenced", False),
        ("F", "Silenced", False),
        ("S1", "Inhibition", True),  # routed before its source fired
        ("S2", "Inhibition", True),
        ("S3", "Inhibition", False),  # its source came earlier in the batch
    ]
    assert {e[1] for e in outlet.log if e[0] == "released"} == {"S1", "S2", "S3", "F"}

    async with pool.acquire() as conn:
        states = {
            r["fingerprint"]: (r["status"], r["outcome"])
            for r in await conn.fetch("SELECT fingerprint, status, outcome FROM anomaly_states")
        }
        routed = {
            r["fingerprint"]: [Destination.of_json(m) for m in r["matches"]]
            for r in await conn.fetch("SELECT fingerprint, matches FROM routed_anomalies")
        }
        holds = {
            r["fingerprint"]: (r["reason"], r["source_fingerprint"], r["released"])
            for r in await conn.fetch(
                "SELECT fingerprint, reason, source_fingerprint, released_at IS NOT NULL"
                " AS released FROM suppressed_anomalies"
            )
        }
        groups = {
            r["group_key"]: (r["next_flush_at"], r["last_flush_at"], r["flushes"])
            for r in await conn.fetch("SELECT * FROM route_groups")
        }
        members = {
            (r["group_key"], r["fingerprint"]): (r["firing"], r["pending"], r["severity"])
            for r in await conn.fetch("SELECT * FROM route_group_members")
        }
    assert states == {fp: (s.anomaly.status, s.outcome) for fp, s in memory.states.items()}
    assert routed == {fp: r.to for fp, r in memory.routed.items()}
    assert holds == {
        fp: (
            "silenced" if isinstance(h.hold, Silenced) else "inhibited",
            None if isinstance(h.hold, Silenced) else h.hold.source_fingerprint,
            h.released,
        )
        for fp, h in memory.held.items()
    }
    assert groups == {
        key: (g.next_flush_at, g.last_flush_at, g.flushes) for key, g in memory.groups.items()
    }
    assert members == {
        (key, fp): (m.firing, m.pending, m.severity)
        for key, g in memory.groups.items()
        for fp, m in g.members.items()
    }


async def test_a_batch_costs_the_same_statements_whatever_its_size(pool: Any) -> None:
    async def statements(batch: list[AnomalyDetected], at: datetime) -> int:
        async with UnitOfWork(pool, SCHEMA) as uow:
            conn = CountingConnection(uow.conn)
            pipeline = RoutingPipeline(PostgresStore(conn), TREE, Outlet(), at)  # type: ignore[arg-type]
            await pipeline.arrive(arrivals(batch, 0))
            await uow.commit()
        return conn.statements

    await statements([low(f"w{i}", f"w{i}") for i in range(2)], T0)  # the two groups
    small = await statements([low(f"s{i}", f"w{i % 2}") for i in range(4)], T0)
    large = await statements([low(f"l{i}", f"w{i % 2}") for i in range(80)], T0)
    assert small == large
    resolving_small = await statements(
        [low(f"s{i}", f"w{i % 2}", status="resolved") for i in range(4)], T0
    )
    resolving_large = await statements(
        [low(f"l{i}", f"w{i % 2}", status="resolved") for i in range(80)], T0
    )
    assert resolving_small == resolving_large
