"""Driving `orderguard up` as a user would: start it, read its status, wait on conditions."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
# Lines of each log shown when a test of a running `up` fails.
LOG_TAIL_LINES = 60


@dataclass
class Up:
    """A running `orderguard up`; `output` is what the supervisor printed, once it stopped."""

    process: subprocess.Popen[str]
    data_dir: Path
    output: str = ""

    def stop(self) -> None:
        """Ctrl-C, as a user stops it; killed if it does not stop in time (then it failed)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.output, _ = self.process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.output, _ = self.process.communicate()
            self.output += "\n[test] `orderguard up` did not stop in 90 s after SIGINT; killed it"

    def diagnostics(self) -> str:
        """The supervisor's output and the tail of every log it kept: what a failure needs."""
        parts = [f"==== orderguard up (exit {self.process.returncode}) ====\n{self.output}"]
        for log in sorted((self.data_dir / "logs").glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            parts.append(f"==== {log.name} (last {len(lines)} lines) ====\n" + "\n".join(lines))
        pg_log = self.data_dir / "pgdata" / "log"
        if pg_log.exists():
            parts.append(f"==== {pg_log} ====\n{pg_log.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)


@contextlib.contextmanager
def running_up(data_dir: Path, *args: str) -> Iterator[Up]:
    """`orderguard up` on `data_dir`, stopped on leaving; when the body fails, the supervisor's
    output and the services' log tails are printed (pytest shows them with the failure)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "orderguard.cli", "up", "--data-dir", str(data_dir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    up = Up(process, data_dir)
    try:
        yield up
    except BaseException:
        up.stop()
        print(up.diagnostics())
        raise
    up.stop()


def up_status(data_dir: Path) -> dict[str, Any] | None:
    return _status(data_dir)[0]


def _status(data_dir: Path) -> tuple[dict[str, Any] | None, str]:
    """`orderguard status --json`, or None and why not."""
    result = subprocess.run(
        [sys.executable, "-m", "orderguard.cli", "status", "--json", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        return None, f"status exited {result.returncode}: {result.stderr[-2000:]}"
    return json.loads(result.stdout), ""


def wait_while_up(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    up: subprocess.Popen[str],
    last_seen: Callable[[], object] | None = None,
) -> T:
    """Poll `check` until it answers; fail after `timeout` (or when `up` exits) saying what was
    last seen (`last_seen()`, else the last answer)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        assert up.poll() is None, f"`orderguard up` exited while waiting for {what}"
        last = check()
        if last:
            return last
        time.sleep(0.5)
    seen = last_seen() if last_seen is not None else last
    pytest.fail(f"timed out after {timeout}s waiting for {what}; last: {seen!r}")


def consumed_duplicates(exposition: str, topic: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("orderguard_events_consumed_total{")
        and 'outcome="duplicate"' in line
        and f'topic="{topic}"' in line
    )


def wait_all_ready(
    data_dir: Path,
    timeout: float,
    what: str,
    up: subprocess.Popen[str],
    also: Callable[[dict[str, Any]], bool] = lambda status: True,
) -> dict[str, Any]:
    """The status once every service answers ready (and `also` holds); on timeout the failure
    shows the last status read, with each service's readiness."""
    seen: list[object] = [None]

    def ready() -> dict[str, Any] | None:
        status, why_not = _status(data_dir)
        seen[0] = status or why_not
        if status and all(s["ready"] for s in status["services"].values()) and also(status):
            return status
        return None

    return wait_while_up(ready, timeout, what, up, last_seen=lambda: seen[0])


def all_ready(data_dir: Path) -> dict[str, Any] | None:
    status = up_status(data_dir)
    if status and all(s["ready"] for s in status["services"].values()):
        return status
    return None
