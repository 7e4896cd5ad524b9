"""Pydantic validation errors worded for people editing a configuration file."""

from __future__ import annotations

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
