"""The work item book: a batch of routed anomalies and clearances decided in memory, record
after record, each seeing what the records before it in the batch did; what it writes back is
one row per changed item and anomaly, and the timeline in order."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

from orderguard.services.notifier.work_items.book import Firing, WorkItemBook
from orderguard.services.notifier.work_items.domain import Anomaly, SlaPolicy, State

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
POLICY = SlaPolicy.of_seconds(
    {"P1": 1800, "P2": 7200, "P3": 28800, "P4": 86400},
    {"P1": 14400, "P2": 86400, "P3": 172800, "P4": 259200},
    reminder_every_s=600,
    reopen_window_s=3600,
)
GROUP = ("warehouse", 'warehouse-stock:{warehouse="main"}')


def book() -> WorkItemBook:
    ids = itertools.count(1)
    return WorkItemBook(T0, POLICY, new_item_id=lambda: str(uuid.UUID(int=next(ids))))


def firing(fingerprint: str, at: datetime = T0, severity: str = "P3") -> Firing:
    anomaly = Anomaly(
        fingerprint=fingerprint,
        rule="stock.low",
        severity=severity,
        summary=f"{fingerprint} low in main",
        labels={"sku": fingerprint, "warehouse": "main"},
        event_time=at,
    )
    return Firing(*GROUP, anomaly, at, f"ev-{fingerprint}")


def test_two_copies_of_a_fingerprint_in_one_batch_open_one_item_with_one_anomaly() -> None:
    b = book()
    first = b.fire(firing("fp-1"))
    assert first is not None and [e.what for e in first.entries] == ["opened"]
    assert b.fire(firing("fp-1")) is None  # the same anomaly again: nothing changes
    [item] = b.items.values()
    assert (item.anomaly_count, item.open_anomalies) == (1, 1)
    assert list(b.changed_anomalies) == [(item.id, "fp-1")]
    assert [(i, e.what) for i, e in b.timeline] == [(item.id, "opened")]
    assert list(b.links) == [(item.id, "product", "fp-1")]


def test_anomalies_of_one_group_in_one_batch_join_the_item_the_first_opened() -> None:
    b = book()
    b.fire(firing("fp-1"))
    b.fire(firing("fp-2", severity="P2"))
    [item] = b.items.values()
    assert (item.anomaly_count, item.open_anomalies, item.severity) == (2, 2, "P2")
    assert [e.what for _, e in b.timeline] == ["opened", "anomaly attached", "severity raised"]
    assert list(b.changed_items) == [item.id]  # written once, as it ends


def test_a_clearance_after_its_raise_in_the_same_batch_clears_and_resolves_the_item() -> None:
    b = book()
    b.fire(firing("fp-1"))
    [cleared] = b.clear("fp-1", T0 + timedelta(seconds=5))
    item = cleared.item
    assert item.state is State.RESOLVED and item.cleared_at == T0 and item.open_anomalies == 0
    assert [e.what for _, e in b.timeline] == ["opened", "anomaly cleared", "resolved"]
    assert b.anomalies[(item.id, "fp-1")].cleared_at == T0
    assert b.clearances == {"fp-1": T0 + timedelta(seconds=5)}
    assert list(b.changed_clearances) == ["fp-1"]
    # Fired again later in the same batch (a later episode): the item reopens, counted again.
    again = b.fire(firing("fp-1", at=T0 + timedelta(seconds=9)))
    assert again is not None and again.item.state is State.OPEN and again.item.reopened == 1
    assert b.anomalies[(item.id, "fp-1")].fired == 2


def test_a_clearance_that_overtakes_its_firing_in_the_batch_makes_it_arrive_cleared() -> None:
    b = book()
    assert b.clear("fp-1", T0 + timedelta(seconds=1)) == []  # nothing fires yet: remembered
    changed = b.fire(firing("fp-1"))
    assert changed is not None and changed.item.state is State.RESOLVED
    assert [e.what for e in changed.entries] == ["opened", "anomaly cleared", "resolved"]


def test_a_clearance_older_than_the_firing_it_meets_is_ignored() -> None:
    b = book()
    b.fire(firing("fp-1", at=T0))
    assert b.clear("fp-1", T0 - timedelta(seconds=1)) == []
    [item] = b.items.values()
    assert item.state is State.OPEN and b.anomalies[(item.id, "fp-1")].cleared_at is None


def test_an_item_read_from_the_table_takes_the_batch_and_each_item_is_written_once() -> None:
    before = book()
    before.fire(firing("fp-0"))
    before.fire(firing("fp-9"))
    before.clear("fp-0", T0 + timedelta(seconds=1))
    [stored] = before.items.values()
    # The next batch, as the handlers load it: the group's latest item and the fingerprints' rows.
    b = book()
    b.items[stored.id] = stored
    b.latest[GROUP] = stored.id
    b.anomalies.update(
        (key, row) for key, row in before.anomalies.items() if key[1] in ("fp-0", "fp-1")
    )
    b.fire(firing("fp-1"))
    b.fire(firing("fp-0", at=T0 + timedelta(seconds=3)))  # cleared before: fires again
    b.clear("fp-1", T0 + timedelta(seconds=4))
    [item] = b.items.values()
    assert item.id == stored.id and list(b.changed_items) == [stored.id]
    assert [e.what for _, e in b.timeline] == [
        "anomaly attached",
        "anomaly fired again",
        "anomaly cleared",
    ]
    assert (item.anomaly_count, item.open_anomalies, item.state) == (3, 2, State.OPEN)
    refired = b.anomalies[(stored.id, "fp-0")]
    assert (refired.fired, refired.cleared_at, refired.event_time) == (
        2,
        None,
        T0 + timedelta(seconds=3),
    )
    assert sorted(fp for _, fp in b.changed_anomalies) == ["fp-0", "fp-1"]
