"""The docs name only settings that exist: every ORDERGUARD_* variable in the README, docs/ and
deploy/ is read by the settings model (a knob named in docs but read by no code changes
nothing, silently), and the documented severity time limits are the routing file's."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from orderguard.services.notifier.routing import (
    DEFAULT_ROUTING_FILE,
    DEFAULT_SEVERITIES,
    SEVERITIES,
    format_duration,
    load_routing,
)
from orderguard.shared.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
# Docs and configuration, not scripts: a shell script's own variables are not settings.
DOCUMENTS = ("*.md", "*.env", "*.example", "*.yaml", "*.yml")
NAME = re.compile(r"ORDERGUARD_[A-Z0-9_]*[A-Z0-9]")


def documented_names() -> dict[str, list[str]]:
    files = [ROOT / "README.md"]
    for folder in ("docs", "deploy"):
        files += [f for pattern in DOCUMENTS for f in (ROOT / folder).rglob(pattern)]
    names: dict[str, list[str]] = {}
    for file in files:
        for name in NAME.findall(file.read_text(encoding="utf-8")):
            names.setdefault(name, []).append(str(file.relative_to(ROOT)))
    return names


def _model_of(annotation: object) -> type[BaseModel] | None:
    """The settings section a field holds (through Optional), if it is one."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def is_setting(name: str) -> bool:
    """ORDERGUARD_A__B__C: field `a` of Settings, `b` of its section, ...; a dict field takes
    any key below it; a trailing `__` names a section."""
    parts = name.removeprefix("ORDERGUARD_").lower().split("__")
    model: type[BaseModel] = Settings
    for index, part in enumerate(parts):
        if not part:
            return True
        field = model.model_fields.get(part)
        if field is None:
            return False
        if dict in (
            typing.get_origin(field.annotation),
            *map(typing.get_origin, typing.get_args(field.annotation)),
        ):
            return True  # keys below are a team, a channel, an API key...
        section = _model_of(field.annotation)
        if section is None:
            return index == len(parts) - 1
        model = section
    return True


def test_every_documented_orderguard_variable_is_a_setting() -> None:
    names = documented_names()
    assert "ORDERGUARD_KAFKA_BOOTSTRAP" in names  # the scan finds them
    unknown = {name: sorted(set(files)) for name, files in names.items() if not is_setting(name)}
    assert unknown == {}


def test_the_checker_tells_settings_from_names_nobody_reads() -> None:
    assert is_setting("ORDERGUARD_CHANNELS__WEBHOOK__URL")
    assert is_setting("ORDERGUARD_DELIVERIES__QUIET_HOURS__START")
    assert is_setting("ORDERGUARD_WORK_ITEM_CLAIM_WITHIN_S")
    assert not is_setting("ORDERGUARD_WORK_ITEM_RESOLVE_WITHIN_S")
    assert not is_setting("ORDERGUARD_CHANNELS__PIGEON__URL")


def test_the_documented_severity_time_limits_are_the_defaults() -> None:
    limits = ", ".join(
        f"{level} {format_duration(DEFAULT_SEVERITIES[level].time_limit)}" for level in SEVERITIES
    )
    assert f"(default {limits})" in (ROOT / "README.md").read_text(encoding="utf-8")
    shipped = load_routing(DEFAULT_ROUTING_FILE)
    assert {level: shipped.time_limit(level) for level in SEVERITIES} == {
        level: DEFAULT_SEVERITIES[level].time_limit for level in SEVERITIES
    }
