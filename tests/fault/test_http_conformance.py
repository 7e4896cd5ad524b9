"""Every service's HTTP API against its own OpenAPI document, fuzzed by schemathesis: no 5xx,
and every answer has a documented status, content type and body schema.

Real processes (`orderguard up`), requests over HTTP with the API key. The five services are
fuzzed at once; FAULT_FUZZ_EXAMPLES (examples per operation, default 5) and
FAULT_FUZZ_SEED set the depth and the seed (fixed by default, so CI is repeatable).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from upkit import all_ready, wait_while_up

from orderguard.shared.settings import SERVICES

CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance"
)


def _schemathesis(url: str, api_key: str, report: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{url}/openapi.json",
            "--header",
            f"X-API-Key: {api_key}",
            "--checks",
            CHECKS,
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            os.environ.get("FAULT_FUZZ_EXAMPLES", "5"),
            "--seed",
            os.environ.get("FAULT_FUZZ_SEED", "1"),
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--no-color",
        ],
        stdout=report.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )


def _failures(report: str) -> str:
    """The FAILURES section of a schemathesis report: each operation and what it broke."""
    match = re.search(r"=+ FAILURES =+\n(.*?)(?:\n=+ (?:WARNINGS|SUMMARY) =+)", report, re.S)
    return match.group(1) if match else report[-3000:]


def test_every_api_conforms_to_its_openapi_document(tmp_path: Path) -> None:
    data_dir = tmp_path / "og"
    up = subprocess.Popen(
        [sys.executable, "-m", "orderguard.cli", "up", "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    runs: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    try:
        status: dict[str, Any] = wait_while_up(
            lambda: all_ready(data_dir), 180, "every service", up
        )  # type: ignore[arg-type]
        for name in SERVICES:
            report = tmp_path / f"schemathesis-{name}.txt"
            runs[name] = (
                _schemathesis(status["services"][name]["url"], status["api_key"], report),
                report,
            )
        deadline = time.monotonic() + 900
        for process, _ in runs.values():
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for process, _ in runs.values():
            if process.poll() is None:
                process.kill()
        up.send_signal(signal.SIGINT)
        up.wait(timeout=90)
    failed = {
        name: _failures(report.read_text())
        for name, (process, report) in runs.items()
        if process.returncode != 0
    }
    if failed:
        pytest.fail(
            "\n\n".join(f"#### {name}\n{failures}" for name, failures in failed.items()),
            pytrace=False,
        )
