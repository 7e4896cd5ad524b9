"""The README's default severity time limits are the routing file's (the settings it names
are checked by test_settings_names.py)."""

from __future__ import annotations

from pathlib import Path

from orderguard.services.notifier.routing import (
    DEFAULT_ROUTING_FILE,
    DEFAULT_SEVERITIES,
    SEVERITIES,
    format_duration,
    load_routing,
)

ROOT = Path(__file__).resolve().parents[3]


def test_the_documented_severity_time_limits_are_the_defaults() -> None:
    limits = ", ".join(
        f"{level} {format_duration(DEFAULT_SEVERITIES[level].time_limit)}" for level in SEVERITIES
    )
    assert f"(default {limits})" in (ROOT / "README.md").read_text(encoding="utf-8")
    shipped = load_routing(DEFAULT_ROUTING_FILE)
    assert {level: shipped.time_limit(level) for level in SEVERITIES} == {
        level: DEFAULT_SEVERITIES[level].time_limit for level in SEVERITIES
    }
