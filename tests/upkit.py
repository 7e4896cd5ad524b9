"""Driving `orderguard up` as a user would: start it, read its status, wait on conditions."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def up_status(data_dir: Path) -> dict[str, Any] | None:
    result = subprocess.run(
        [sys.executable, "-m", "orderguard.cli", "status", "--json", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return json.loads(result.stdout) if result.returncode == 0 else None


def wait_while_up(
    check: Callable[[], T | None], timeout: float, what: str, up: subprocess.Popen[str]
) -> T:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        assert up.poll() is None, f"`orderguard up` exited while waiting for {what}"
        last = check()
        if last:
            return last
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def consumed_duplicates(exposition: str, topic: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("orderguard_events_consumed_total{")
        and 'outcome="duplicate"' in line
        and f'topic="{topic}"' in line
    )


def all_ready(data_dir: Path) -> dict[str, Any] | None:
    status = up_status(data_dir)
    if status and all(s["ready"] for s in status["services"].values()):
        return status
    return None
