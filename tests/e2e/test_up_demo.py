"""`orderguard up --demo` as a newcomer runs it: within a minute of the services being ready the
generator's live summary shows anomalies raised and work items open in the queues, and Ctrl-C
stops the generator with everything else."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest


def test_up_demo_shows_anomalies_and_work_items_within_a_minute(tmp_path: Path) -> None:
    data_dir = tmp_path / "og"
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orderguard.cli",
            "up",
            "--data-dir",
            str(data_dir),
            "--demo",
            "--demo-speedup",
            "7200",
            "--demo-duration",
            "120",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []

    def read() -> None:
        assert up.stdout is not None
        for line in up.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    generator_pid = None
    try:
        ready_at = None
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert up.poll() is None, "".join(seen)
                continue
            seen.append(line)
            if "all services ready" in line:
                ready_at = time.monotonic()
            if ready_at and "work items open" in line and "raised: nothing" not in line:
                open_items = int(line.rsplit("work items open", 1)[1])
                if open_items > 0:
                    assert time.monotonic() - ready_at < 60, "".join(seen)
                    break
        else:
            pytest.fail("no anomaly reached the queues:\n" + "".join(seen))
        children = psutil.Process(up.pid).children()
        generator_pid = next(p.pid for p in children if "scenario" in " ".join(p.cmdline()))
        assert (data_dir / "demo-detectors.yaml").exists()
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
    assert up.returncode == 0, "".join(seen)
    assert generator_pid is not None and not _running(generator_pid)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
