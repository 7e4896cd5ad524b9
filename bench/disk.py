"""How long this machine's disk takes to make a small write durable, measured beside a bench.

Every commit of the embedded PostgreSQL waits until its WAL is on the disk (fsync on), so
every service's transactions wait together while the disk is slow. On these shared machines
that wait is not ours: seen here, one 8 KB `fdatasync` took 2.3 s, and a seed of the
detection bench whose whole system stopped committing for 2 s (every service's outbox, the
same two seconds) had its one detection past 2 s in that gap. A bench that measures latency
prints this beside its figures, as it prints the load, so a tail that is the disk's reads as
the disk's.

A thread writes 4 KB and `fdatasync`s it every `every_s` in a file of the bench's own data dir
(the database's filesystem) and keeps how long each took.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from itertools import islice
from pathlib import Path

from load import percentile

BLOCK = b"\0" * 4096
# Writes rotate over this many blocks: a file of 1 MB, not one that grows.
BLOCKS = 256


class DiskWatch:
    """Durable 4 KB writes every `every_s` into `directory`, each one's start (wall time) and
    duration kept, until `stop()`."""

    def __init__(self, directory: Path, every_s: float = 0.1) -> None:
        self._path = directory / "disk-watch.dat"
        self._every_s = every_s
        # (start, duration) of each write, in order; one append each, so a reader on another
        # thread never sees half of one.
        self._writes: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="disk-watch", daemon=True)

    def start(self) -> DiskWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._path.unlink(missing_ok=True)

    def _run(self) -> None:
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            n = 0
            while not self._stop.is_set():
                began, t0 = time.time(), time.perf_counter()
                os.pwrite(fd, BLOCK, (n % BLOCKS) * len(BLOCK))
                os.fdatasync(fd)
                took = time.perf_counter() - t0
                self.record(began, took)
                n += 1
                self._stop.wait(max(0.0, self._every_s - took))
        finally:
            os.close(fd)

    def record(self, began: float, took_s: float) -> None:
        """One durable write that began at `began` (wall time, s) and took `took_s`."""
        self._writes.append((began, took_s))

    def summary(self, stall_s: float = 0.5) -> dict[str, float]:
        """Writes made, p50/p99/max of their duration (s), and how many took `stall_s` or more."""
        took = [took for _, took in self._writes]
        return {
            "writes": len(took),
            "p50": percentile(took, 0.50),
            "p99": percentile(took, 0.99),
            "max": max(took, default=0.0),
            "stalls": sum(1 for t in took if t >= stall_s),
        }

    def longest_between(self, start: float, end: float) -> float:
        """The longest durable write in progress at any time between `start` and `end` (wall
        time, s): how long the disk kept a commit waiting meanwhile, at least."""
        writes = self._writes
        longest = 0.0
        # Writes follow one another; the one begun before `start` may still run into the span.
        first = bisect.bisect_left(writes, start, key=lambda write: write[0])
        for began, took in islice(writes, max(0, first - 1), None):
            if began > end:
                break
            if began + took >= start:
                longest = max(longest, took)
        return longest
