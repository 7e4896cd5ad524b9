"""The detector clock of a partition: event time minus the allowed lateness, the wall clock once
the partition is idle, never backwards; late events are counted, not dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiokafka import TopicPartition

from orderguard.shared.detection.deadlines import PartitionClocks
from orderguard.shared.settings import Settings

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
TP = TopicPartition("logistics.events", 0)
OTHER = TopicPartition("logistics.events", 1)


class Wall:
    """A wall clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def pass_(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def clocks(
    lateness_s: float = 0, idle_after_s: float = 10, wall_start: datetime = T0
) -> tuple[PartitionClocks, Wall]:
    wall = Wall(wall_start)
    return PartitionClocks(
        timedelta(seconds=lateness_s), timedelta(seconds=idle_after_s), wall=wall
    ), wall


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_partition_has_no_clock_before_its_first_event() -> None:
    clock, _ = clocks()
    assert clock.now(TP) is None


def test_the_clock_is_the_latest_event_time_minus_the_allowed_lateness() -> None:
    clock, _ = clocks(lateness_s=5)
    clock.advance(TP, [at(100), at(130), at(120)])
    assert clock.now(TP) == at(125)
    clock.advance(TP, [at(110)])  # an older event does not move it back
    assert clock.now(TP) == at(125)
    assert clock.now(OTHER) is None, "each partition has its own clock"


def test_events_behind_the_clock_are_late_in_partition_order_and_counting_moves_nothing() -> None:
    clock, _ = clocks(lateness_s=5)
    clock.advance(TP, [at(100)])  # clock 95
    # 96 on time; 200 moves the clock to 195 within the batch, so 190 after it is late; 90 too.
    assert clock.count_late(TP, [at(96), at(200), at(190), at(90)]) == 2
    assert clock.now(TP) == at(95), "counting is not applying"
    assert clock.count_late(OTHER, [at(1), at(0)]) == 0, "a first event is never late"


def test_event_times_without_an_offset_are_taken_as_utc() -> None:
    clock, _ = clocks()
    clock.advance(TP, [datetime(2026, 11, 22, 8, 0, 10)])
    assert clock.now(TP) == at(10)
    assert clock.count_late(TP, [datetime(2026, 11, 22, 8, 0, 5)]) == 1


def test_a_batch_gives_its_late_count_and_its_latest_time_in_one_pass() -> None:
    clock, _ = clocks(lateness_s=5)
    clock.advance(TP, [at(100)])  # clock 95
    assert clock.late_and_latest(TP, [at(96), at(97), at(97), at(150)]) == (0, at(150))
    assert clock.late_and_latest(TP, [at(96), at(200), at(190), at(90)]) == (2, at(200))
    assert clock.late_and_latest(TP, [at(94), at(96)]) == (1, at(96)), "in order, behind the clock"
    assert clock.late_and_latest(TP, []) == (0, None)
    naive = datetime(2026, 11, 22, 8, 1, 40)  # 100 s, taken as UTC
    assert clock.late_and_latest(TP, [at(96), naive, at(99)]) == (0, at(100))
    assert clock.late_and_latest(OTHER, [datetime(2026, 11, 22, 8, 0, 1)]) == (0, at(1))
    assert clock.now(TP) == at(95), "counting is not applying"


def test_an_idle_partition_follows_the_wall_clock_minus_the_lateness() -> None:
    clock, wall = clocks(lateness_s=2, idle_after_s=10, wall_start=at(60))
    clock.advance(TP, [at(50)])  # applied at wall 60
    wall.pass_(9.9)
    assert clock.now(TP) == at(48), "not idle yet: event time"
    wall.pass_(0.1)
    assert clock.now(TP) == at(68), "idle: wall time 70 - lateness 2"
    wall.pass_(100)
    assert clock.now(TP) == at(168), "and it keeps following the wall"


def test_records_of_any_type_keep_a_partition_from_being_idle() -> None:
    clock, wall = clocks(idle_after_s=10, wall_start=at(60))
    clock.advance(TP, [at(50)])
    for _ in range(5):
        wall.pass_(5)
        clock.polled({TP})
    assert clock.now(TP) == at(50)


def test_a_partition_with_records_waiting_is_not_idle_however_long_it_delivered_nothing() -> None:
    # A backlog (the detector behind its partition) is not silence: the records waiting may
    # carry the scans that keep their parcels from stalling; the clock waits for their times.
    clock, wall = clocks(idle_after_s=0.5, wall_start=at(60))
    clock.advance(TP, [at(50)])
    assert clock.now(OTHER) is None  # seen: its idle timer starts
    clock.behind({TP})
    wall.pass_(300)
    assert clock.now(TP) == at(50), "behind: event time only"
    assert clock.now(OTHER) == at(360), "a caught-up partition of the same worker is idle"
    clock.behind(set())  # caught up: nothing else is there, so silence is silence
    assert clock.now(TP) == at(360)
    clock.behind({TP})  # and a clock that followed the wall does not go back
    assert clock.now(TP) == at(360)


def test_a_partition_that_never_had_an_event_starts_its_idle_timer_when_first_seen() -> None:
    clock, wall = clocks(lateness_s=1, idle_after_s=10, wall_start=at(0))
    assert clock.now(TP) is None
    wall.pass_(10)
    assert clock.now(TP) == at(9)


def test_the_clock_never_goes_back_when_events_resume_behind_the_wall() -> None:
    clock, wall = clocks(idle_after_s=10, wall_start=at(0))
    clock.advance(TP, [at(0)])
    wall.pass_(60)
    assert clock.now(TP) == at(60)
    # A publisher whose clock is behind: its event is late and the detector clock stays put.
    assert clock.count_late(TP, [at(30)]) == 1
    clock.advance(TP, [at(30)])
    assert clock.now(TP) == at(60)


def test_a_forgotten_partition_starts_over() -> None:
    clock, wall = clocks(idle_after_s=10, wall_start=at(0))
    clock.advance(TP, [at(500)])
    clock.forget({TP})
    assert clock.now(TP) is None
    wall.pass_(10)
    assert clock.now(TP) == at(10)


def test_settings_give_the_lateness_and_the_idle_time() -> None:
    clock = PartitionClocks.from_settings(
        Settings(detector_allowed_lateness_s=30, detector_idle_after_s=5)
    )
    assert (clock.allowed_lateness, clock.idle_after) == (
        timedelta(seconds=30),
        timedelta(seconds=5),
    )
