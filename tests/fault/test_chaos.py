"""The short chaos run (tests/chaos.py): load while services and two worker replicas of
inventory are killed with SIGKILL; afterwards no invariant is violated. `make chaos` runs the
long one. FAULT_CHAOS_SECONDS sets the load's length (default 45)."""

from __future__ import annotations

import os
from pathlib import Path

from chaos import run


def test_no_invariant_breaks_while_processes_are_killed(tmp_path: Path) -> None:
    figures = run(tmp_path / "og", float(os.environ.get("FAULT_CHAOS_SECONDS", "45")), seed=15)
    assert {"order", "inventory-worker-0", "inventory-worker-1"} <= set(figures.kills), figures
    assert figures.orders >= 20, figures
    assert figures.violations == [], figures.violations
