"""Configuration files people edit (routing, detectors): reading them, and wording their errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic_core import ErrorDetails

# Container-type errors: the offending input is a whole block, too big to quote usefully.
_NO_INPUT_QUOTED = ("dict_type", "list_type", "model_type", "assertion_error")


def readable(error: ErrorDetails) -> str:
    """One error's message, without its location: `required field is missing`, …"""
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field (a typo?)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind not in _NO_INPUT_QUOTED:
        message += f" (got {short(error.get('input'))})"
    return message


def short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_config_text(file: Path, what: str, error: type[Exception]) -> str:
    """The file's text, or `error` naming the file and why it cannot be read."""
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{what} {file} cannot be read: {exc.strerror or exc}") from None
