"""A take-over held for former groups still running asks again with a bounded backoff, keeps
holding on an error, and takes the partitions over (sought, resumed) once they have stopped."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition

from orderguard.shared.engine import Engine
from orderguard.shared.engine import consumer as consumer_module

TP = TopicPartition("orders.events", 0)


class Handler:
    def __init__(self, name: str) -> None:
        self.name = name
        self.topics = ["orders.events"]
        self.event_types = frozenset({"order.placed.v1"})

    async def handle(self, uow, events):  # type: ignore[no-untyped-def]
        pass

    def drop_cached_state(self, partitions):  # type: ignore[no-untyped-def]
        pass


class FakeConsumer:
    def __init__(self) -> None:
        self.resumed: list[TopicPartition] = []

    def resume(self, *partitions: TopicPartition) -> None:
        self.resumed.extend(partitions)


class Answers:
    """Former groups' answers in turn: a list of running groups, or an error to raise."""

    def __init__(self, *answers: list[str] | Exception) -> None:
        self.answers = list(answers)
        self.asked: list[list[str]] = []

    async def still_running(self, groups: Sequence[str]) -> list[str]:
        self.asked.append(list(groups))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_a_held_take_over_waits_with_bounded_backoff_then_takes_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(consumer_module, "time", SimpleNamespace(monotonic=lambda: clock.now))
    answers = Answers(*[["test.a"]] * 6, OSError("broker away"), [])
    consumer = FakeConsumer()
    engine = Engine(
        "test.worker",
        [Handler("test.a"), Handler("test.b")],
        consumer,  # type: ignore[arg-type]
        pool=None,  # type: ignore[arg-type]
        schema="s",
        former_groups=answers,
    )
    resumed: list[tuple[set[TopicPartition], bool]] = []

    async def resume(partitions: set[TopicPartition], hold_take_overs: bool) -> None:
        resumed.append((partitions, hold_take_overs))

    monkeypatch.setattr(engine, "_resume", resume)
    engine.assigned = {TP}
    engine._held = {TP}
    delays = []
    for _ in range(7):
        await engine._take_over_held()
        delays.append(engine._held_check_at - clock.now)
        assert engine.waiting_for_former_groups and not resumed and not consumer.resumed
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert answers.asked[0] == ["test.a", "test.b"]
    await engine._take_over_held()
    assert resumed == [({TP}, False)]
    assert consumer.resumed == [TP]
    assert not engine.waiting_for_former_groups
