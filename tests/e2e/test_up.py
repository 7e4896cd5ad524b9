"""`orderguard up` as a user runs it: everything starts, says where it is, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from orderguard.shared.settings import SERVICES


def _status(data_dir: Path) -> dict | None:  # type: ignore[type-arg]
    result = subprocess.run(
        [sys.executable, "-m", "orderguard.cli", "status", "--json", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return json.loads(result.stdout) if result.returncode == 0 else None


def test_up_starts_everything_and_ctrl_c_stops_it_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "og"
    up = subprocess.Popen(
        [sys.executable, "-m", "orderguard.cli", "up", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        status = None
        while time.monotonic() < deadline:
            assert up.poll() is None, up.stdout.read() if up.stdout else ""
            status = _status(data_dir)
            if status and all(s["ready"] for s in status["services"].values()):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"not ready in time: {status}")
        assert status is not None
        assert set(status["services"]) == set(SERVICES)
        assert status["database"]["url"].startswith("postgresql://")
        assert ":" in status["broker"]["bootstrap"]
        key = status["api_key"]
        inventory = status["services"]["inventory"]["url"]
        assert httpx.put(f"{inventory}/stock/S/main", json={"on_hand": 1}).status_code == 401
        ok = httpx.put(f"{inventory}/stock/S/main", json={"on_hand": 1}, headers={"X-API-Key": key})
        assert ok.status_code == 200, ok.text
        console = status["services"]["notifier"]["url"] + "/console/sign-in"
        assert httpx.get(console).status_code == 200
        pids = [s["pid"] for s in status["services"].values()] + [status["broker"]["pid"]]
        assert all(psutil.pid_exists(pid) for pid in pids)
        postgres_pids = [
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if str(data_dir / "pgdata") in " ".join(p.info["cmdline"] or [])
        ]
        assert postgres_pids, "an embedded PostgreSQL runs on the data dir"
    finally:
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=60)
    assert up.returncode == 0, output
    assert "stopped" in output
    assert re.search(r"console: http://127\.0\.0\.1:\d+/console/  first admin: admin / \S+", output)
    for pid in pids + postgres_pids:
        assert not _running(pid), f"process {pid} outlived `orderguard up`"
    assert _status(data_dir) is None


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
