"""Every ORDERGUARD_* variable named in the docs, compose and deploy/ is a setting the code
reads: a renamed or removed setting cannot live on in a manifest or a runbook."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from orderguard.cli.services_registry import OrderguardSettings as Settings

ROOT = Path(__file__).resolve().parents[3]
# A variable name, not a prose prefix (`ORDERGUARD_*`, `ORDERGUARD_CHANNELS__<CHANNEL>__…`).
NAME = re.compile(r"\bORDERGUARD_[A-Z0-9]+(?:_{1,2}[A-Z0-9]+)*\b(?![_*<…])")
# Variables of the tooling around the code, not settings.
NOT_SETTINGS = {"ORDERGUARD_PYTHON"}


def _documents() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "docker-compose.yml", ROOT / "Dockerfile"]
    found += sorted((ROOT / "docs").rglob("*.md"))
    found += sorted(
        p for p in (ROOT / "deploy").rglob("*") if p.suffix in {".yaml", ".yml", ".env", ".md"}
    )
    return [p for p in found if p.is_file()]


def _model_of(annotation: object) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (`X | None` too), if any."""
    candidates = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else ()
    for candidate in (annotation, *candidates):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_setting(name: str) -> bool:
    model: type[BaseModel] | None = Settings
    for part in name.removeprefix("ORDERGUARD_").lower().split("__"):
        if model is None:
            return True  # a key of a mapping-valued setting (e.g. a channel's team address)
        field = model.model_fields.get(part)
        if field is None:
            return False
        model = _model_of(field.annotation)
    return True


@pytest.mark.parametrize("document", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_orderguard_variable_named_is_a_setting(document: Path) -> None:
    named = set(NAME.findall(document.read_text(encoding="utf-8"))) - NOT_SETTINGS
    unknown = sorted(name for name in named if not _is_setting(name))
    assert not unknown, f"{document.relative_to(ROOT)} names settings that do not exist: {unknown}"
