"""Every ORDERGUARD_* variable named in the docs, compose, deploy/ and the code is a setting it
reads (a common one or one in a service's section): a renamed or removed setting cannot live
on in a manifest or a runbook."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from orderguard.cli.services_registry import OrderguardSettings
from orderguard.cli.settings_table import section_model

ROOT = Path(__file__).resolve().parents[3]
# A variable name, not a prose prefix (`ORDERGUARD_*`, `ORDERGUARD_NOTIFIER__CHANNELS__<CHANNEL>__…`).
NAME = re.compile(r"\bORDERGUARD_[A-Z0-9]+(?:_{1,2}[A-Z0-9]+)*\b(?![_*<…])")
# Variables of the tooling around the code (and a dashboard query's name), not settings.
NOT_SETTINGS = {"ORDERGUARD_PYTHON", "ORDERGUARD_JOBS"}


def _documents() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "docker-compose.yml", ROOT / "Dockerfile"]
    # docs/settings.md is rendered from the settings themselves (and lists the old names).
    found += sorted(p for p in (ROOT / "docs").rglob("*.md") if p.name != "settings.md")
    found += sorted(
        p
        for p in (ROOT / "deploy").rglob("*")
        if p.suffix in {".yaml", ".yml", ".env", ".example", ".md", ".json", ".py"}
    )
    # The code that names variables: error messages, help texts, the environments it passes on.
    for code in ("cli", "scenario", "bench", "services", "shared"):
        found += sorted(p for p in (ROOT / code).rglob("*") if p.suffix in {".py", ".yaml"})
    # The two that name the old names on purpose: the renames and their table.
    renames = {ROOT / "cli" / "services_registry.py", ROOT / "cli" / "settings_table.py"}
    return [p for p in found if p.is_file() and p not in renames]


def _is_setting(name: str) -> bool:
    model: type[BaseModel] | None = OrderguardSettings  # with every service's section
    for part in name.removeprefix("ORDERGUARD_").lower().split("__"):
        if model is None:
            return True  # a key of a mapping-valued setting (e.g. a channel's team address)
        field = model.model_fields.get(part)
        if field is None:
            return False
        model = section_model(field.annotation)
    return True


@pytest.mark.parametrize("document", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_orderguard_variable_named_is_a_setting(document: Path) -> None:
    named = set(NAME.findall(document.read_text(encoding="utf-8"))) - NOT_SETTINGS
    unknown = sorted(name for name in named if not _is_setting(name))
    assert not unknown, f"{document.relative_to(ROOT)} names settings that do not exist: {unknown}"
