"""The disk watch the detection bench prints beside its figures (bench/disk.py): which durable
write kept commits waiting while a label waited for its detection."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[3] / "bench"


def load_module() -> ModuleType:
    sys.path.insert(0, str(BENCH))  # as the bench scripts run it: beside load.py
    spec = importlib.util.spec_from_file_location("bench_disk", BENCH / "disk.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


disk = load_module()


def watch_of(writes: list[tuple[float, float]], tmp_path: Path) -> object:
    watch = disk.DiskWatch(tmp_path)
    for began, took in writes:
        watch.record(began, took)
    return watch


def test_the_longest_write_in_progress_during_a_span_counts_also_one_begun_before_it(
    tmp_path: Path,
) -> None:
    # Writes are sequential: 100.0-100.01, 100.1-102.4 (a stall), 102.4-102.41, 102.5-102.51.
    watch = watch_of([(100.0, 0.01), (100.1, 2.3), (102.4, 0.01), (102.5, 0.01)], tmp_path)
    assert watch.longest_between(101.0, 101.5) == 2.3  # inside the stall, begun before
    assert watch.longest_between(102.45, 103.0) == 0.01  # after it
    assert watch.longest_between(99.0, 100.05) == 0.01  # before it began
    assert watch.longest_between(100.05, 100.1) == 2.3  # it begins at the span's end
    assert watch.longest_between(200.0, 201.0) == 0.0  # nothing written then


def test_the_summary_counts_stalls_at_or_over_the_threshold(tmp_path: Path) -> None:
    watch = watch_of([(float(i), 0.002) for i in range(98)] + [(98.0, 0.5), (99.0, 2.0)], tmp_path)
    summary = watch.summary(stall_s=0.5)
    assert summary["writes"] == 100
    assert summary["p50"] == 0.002
    assert summary["max"] == 2.0
    assert summary["stalls"] == 2


def test_it_writes_durably_until_stopped_and_leaves_no_file(tmp_path: Path) -> None:
    watch = disk.DiskWatch(tmp_path, every_s=0.01).start()
    deadline = time.monotonic() + 10
    while watch.summary()["writes"] < 3:
        assert time.monotonic() < deadline, "no durable write within 10 s"
        time.sleep(0.01)
    watch.stop()
    written = watch.summary()["writes"]
    assert written >= 3
    assert not (tmp_path / "disk-watch.dat").exists()
    time.sleep(0.05)
    assert watch.summary()["writes"] == written  # stopped: nothing more
