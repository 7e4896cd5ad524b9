"""The engine reads a batch's partitions, first and last offsets in one pass (`_runs`): the
offsets it locks, skips below and stores next."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from orderguard.shared.engine.consumer import _runs


def record(topic: str, partition: int, offset: int) -> ConsumerRecord:
    return ConsumerRecord(topic, partition, offset, 0, 0, None, b"{}", None, 2, 0, [])


def test_each_partition_spans_from_its_first_to_its_last_offset() -> None:
    batch = [record("a", 0, 5), record("a", 0, 6), record("a", 1, 0), record("b", 0, 9)]

    assert _runs(batch) == {("a", 0): (5, 6), ("a", 1): (0, 0), ("b", 0): (9, 9)}


def test_a_partition_met_again_extends_its_run() -> None:
    batch = [record("a", 0, 5), record("a", 1, 3), record("a", 0, 7), record("a", 0, 8)]

    assert _runs(batch) == {("a", 0): (5, 8), ("a", 1): (3, 3)}


def test_an_empty_batch_has_no_runs() -> None:
    assert _runs([]) == {}
