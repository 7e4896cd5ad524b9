"""Work items from batches on the real PostgreSQL: a batch of routed anomalies and clearances
is read and written set-based (the same few statements for 4 records or 80), and what it
stores is what each record, in order, did: one item per group, its anomalies, links and its
timeline in order, a raise cleared in the same batch, a firing its clearance overtook."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from testkit import CountingConnection

from orderguard.services.notifier.bootstrap import DEFINITION as NOTIFIER
from orderguard.services.notifier.work_items.domain import SlaPolicy
from orderguard.services.notifier.work_items.handlers import (
    Routed,
    apply_clearances,
    apply_routed,
)
from orderguard.shared.db import apply_migrations, create_pool
from orderguard.shared.events.anomalies import AnomalyDetected, AnomalyRouted
from orderguard.shared.settings import Settings
from orderguard.shared.uow import UnitOfWork

SCHEMA = "notifier"
T0 = datetime.now(UTC).replace(microsecond=0)
POLICY = SlaPolicy.of_seconds(
    {"P1": 1800, "P2": 7200, "P3": 28800, "P4": 86400},
    {"P1": 14400, "P2": 86400, "P3": 172800, "P4": 259200},
    reminder_every_s=600,
    reopen_window_s=3600,
)
TOPIC = "work_items.events"


def routed(fp: str, warehouse: str = "main", status: str = "firing", at: datetime = T0) -> Routed:
    anomaly = AnomalyDetected(
        rule="stock.low",
        fingerprint=fp,
        status=status,  # type: ignore[arg-type]
        severity="P3",
        team="warehouse",
        labels={"sku": fp, "warehouse": warehouse},
        summary=f"{fp} low in {warehouse}",
        event_time=at,
        detected_at=at,
        source_event_id=f"src-{fp}",
    )
    event = AnomalyRouted(
        anomaly=anomaly,
        route="warehouse-stock",
        queue="warehouse",
        channels=["in_app"],
        routed_at=at,
        group_key=f'warehouse-stock:{{warehouse="{warehouse}"}}',
    )
    return Routed("warehouse", event, f"ev-{fp}-{status}")


@pytest.fixture
async def pool(settings: Settings) -> Any:
    await apply_migrations(settings.database_url, SCHEMA, NOTIFIER.migrations)
    pool = await create_pool(settings.database_url, SCHEMA)
    yield pool
    await pool.close()


async def batch(pool: Any, records: list[Routed]) -> tuple[int, int]:
    """Apply one batch; (statements it took, events it published)."""
    async with UnitOfWork(pool, SCHEMA) as uow:
        counting = CountingConnection(uow.conn)
        uow.conn = counting  # type: ignore[assignment]
        await apply_routed(uow, POLICY, TOPIC, records)
        statements = counting.statements
        uow.conn = counting.conn
        await uow.commit()
    return statements, len(uow.outbox)


async def test_a_batch_is_set_based_and_stores_what_each_record_did(pool: Any) -> None:
    await batch(pool, [routed("warm-1", "east"), routed("warm-2", "west")])  # the groups' items
    small, _ = await batch(pool, [routed(f"s{i}", ("east", "west")[i % 2]) for i in range(4)])
    large, _ = await batch(pool, [routed(f"l{i}", ("east", "west")[i % 2]) for i in range(80)])
    assert small == large

    # One batch: two copies of a raise, a raise cleared later in the batch, a clearance that
    # overtakes its raise, and the first raise of a new group.
    _, published = await batch(
        pool,
        [
            routed("a", "north"),
            routed("a", "north"),
            routed("b", "north"),
            routed("b", "north", status="resolved", at=T0 + timedelta(seconds=1)),
            routed("c", "south", status="resolved", at=T0 + timedelta(seconds=1)),
            routed("c", "south"),
        ],
    )
    async with pool.acquire() as conn:
        items = {
            r["group_key"]: r
            for r in await conn.fetch(
                "SELECT id, group_key, state, anomaly_count, open_anomalies, rules FROM work_items"
            )
        }
        north = items['warehouse-stock:{warehouse="north"}']
        south = items['warehouse-stock:{warehouse="south"}']
        assert (north["state"], north["anomaly_count"], north["open_anomalies"]) == ("open", 2, 1)
        assert north["rules"] == ["stock.low"]
        assert (south["state"], south["anomaly_count"], south["open_anomalies"]) == (
            "resolved",
            1,
            0,
        )
        timeline = [
            r["what"]
            for r in await conn.fetch(
                "SELECT what FROM work_item_timeline WHERE work_item_id = $1 ORDER BY id",
                north["id"],
            )
        ]
        assert timeline == ["opened", "anomaly attached", "anomaly cleared"]
        timeline = [
            r["what"]
            for r in await conn.fetch(
                "SELECT what FROM work_item_timeline WHERE work_item_id = $1 ORDER BY id",
                south["id"],
            )
        ]
        assert timeline == ["opened", "anomaly cleared", "resolved"]
        anomalies = {
            r["fingerprint"]: r["cleared_at"] is not None
            for r in await conn.fetch(
                "SELECT fingerprint, cleared_at FROM work_item_anomalies"
                " WHERE work_item_id = ANY($1::uuid[])",
                [north["id"], south["id"]],
            )
        }
        assert anomalies == {"a": False, "b": True, "c": True}
        links = await conn.fetch(
            "SELECT kind, ref FROM work_item_links WHERE work_item_id = $1 ORDER BY ref",
            north["id"],
        )
        assert [(r["kind"], r["ref"]) for r in links] == [("product", "a"), ("product", "b")]
        clearances = await conn.fetchval(
            "SELECT count(*) FROM anomaly_clearances WHERE fingerprint IN ('b', 'c')"
        )
        assert clearances == 2
    # opened (2 items) and resolved (south) are announced; attachments and clearances are not
    assert published == 3

    # A clearance read from anomalies.detected for an anomaly already cleared changes nothing.
    async with UnitOfWork(pool, SCHEMA) as uow:
        await apply_clearances(uow, POLICY, TOPIC, [("b", T0 + timedelta(seconds=2))])
        await uow.commit()
    assert uow.outbox == []
