"""JSON Schema of each event type and version, generated from the registered models.

The one way to get an event's schema: the CLI writes these to `docs/contract/schemas/`,
every service serves them at `/schemas`, and the compatibility check compares them.
"""

from __future__ import annotations

import json
from typing import Any

from orderguard.shared.events import REGISTRY

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _with_dialect(schema: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": DIALECT, **schema}


def event_schema(event_type: str) -> dict[str, Any]:
    """The data schema of `event_type`; raises UnknownEventType for an unregistered one."""
    return _with_dialect(REGISTRY.model_for(event_type).model_json_schema())


def event_schemas() -> dict[str, dict[str, Any]]:
    """Every registered event type's schema, by type name."""
    return {name: _with_dialect(schema) for name, schema in REGISTRY.json_schemas().items()}


def schema_file_name(event_type: str) -> str:
    return f"{event_type}.json"


def render_schema(schema: dict[str, Any]) -> str:
    """The committed text of a schema: stable key order, so a diff shows only real changes."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
