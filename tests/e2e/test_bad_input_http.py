"""Bad input is a 422 naming the field, never a 500: every route of every service's OpenAPI
gets a NUL byte in each text input, a number past any column in each numeric input and a
time at the edge of the calendar in each time input."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest

from orderguard.cli.services_registry import definition_of
from orderguard.shared.settings import SERVICES

NUL_TEXT = "bad\x00text"
HUGE_INT = 99_999_999_999_999_999_999  # past bigint
HUGE_NUMBER = 1e300
FAR_TIME = "0001-01-01T00:00:00+00:00"  # a week before it is before datetime.min
# Routes that refuse a request before reading its body: the signed carrier webhook (401
# unsigned) and the raw-body evidence upload (415 without an accepted type).
REFUSED_BEFORE_THE_BODY = {
    ("post", "/carriers/{carrier}/scans"),
    ("post", "/cases/{case_id}/attachments"),
}
Location = tuple[str | int, ...]


def resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = spec["components"]["schemas"].get(name) or spec["$defs"][name]
    if "anyOf" in schema or "oneOf" in schema:
        options = [resolve(s, spec) for s in schema.get("anyOf") or schema["oneOf"]]
        return next((s for s in options if s.get("type") != "null"), options[0])
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(resolve(part, spec))
        return merged
    return schema


def plausible(schema: dict[str, Any], spec: dict[str, Any]) -> Any:
    """A value of the schema's shape: the first enum member, one item, required fields."""
    schema = resolve(schema, spec)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object":
        return {
            name: plausible(sub, spec)
            for name, sub in schema.get("properties", {}).items()
            if name in schema.get("required", ())
        }
    if kind == "array":
        return [plausible(schema.get("items", {}), spec)] * max(schema.get("minItems", 1), 1)
    if kind in ("integer", "number"):
        return max(schema.get("minimum", 1), 1)
    if kind == "boolean":
        return False
    if schema.get("format") == "date-time":
        return "2026-11-22T10:00:00+00:00"
    return "x" * max(schema.get("minLength", 1), 1)


def bad_value(schema: dict[str, Any], spec: dict[str, Any]) -> Any | None:
    schema = resolve(schema, spec)
    kind = schema.get("type")
    if schema.get("format") == "date-time":
        return FAR_TIME
    if "enum" in schema or "const" in schema or schema.get("format") == "uuid":
        return NUL_TEXT if kind == "string" else None  # refused as a member already
    return {"string": NUL_TEXT, "integer": HUGE_INT, "number": HUGE_NUMBER}.get(kind or "")


def leaves(
    schema: dict[str, Any], spec: dict[str, Any], at: Location = (), depth: int = 0
) -> Iterator[tuple[Location, Any]]:
    """Every text or number field of a body, at any depth, with a bad value for it."""
    schema = resolve(schema, spec)
    if depth > 5:
        return
    if schema.get("type") == "object":
        for name, sub in schema.get("properties", {}).items():
            yield from leaves(sub, spec, (*at, name), depth + 1)
    elif schema.get("type") == "array":
        yield from leaves(schema.get("items", {}), spec, (*at, 0), depth + 1)
    elif at and (bad := bad_value(schema, spec)) is not None:
        yield at, bad


def with_value(
    base: Any, schema: dict[str, Any], spec: dict[str, Any], at: Location, value: Any
) -> Any:
    """`base` with `value` at `at`, creating the optional objects and lists on the way."""
    body = copy.deepcopy(base)
    node, node_schema = body, resolve(schema, spec)
    for step in at[:-1]:
        if isinstance(step, int):
            node_schema = resolve(node_schema.get("items", {}), spec)
        else:
            node_schema = resolve(node_schema["properties"][step], spec)
        if isinstance(node, dict) and step not in node:
            node[step] = plausible(node_schema, spec)
        node = node[step]
    node[at[-1]] = value
    return body


def path_of(template: str, parameters: list[dict[str, Any]], bad: str | None = None) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == bad:
            return "bad%00text"
        schema = next(p["schema"] for p in parameters if p["name"] == name)
        return "00000000-0000-0000-0000-000000000000" if schema.get("format") == "uuid" else "x"

    return re.sub(r"\{([^}]+)\}", fill, template)


def fields_named(response: Any) -> set[str]:
    return {error["field"] for error in response.json().get("errors", [])}


@pytest.mark.parametrize("name", SERVICES)
async def test_every_text_number_and_time_input_refuses_what_it_cannot_hold_with_a_422(
    start_service: Any, name: str
) -> None:
    service = await start_service(definition_of(name), roles=frozenset({"api"}))
    client = service.client
    spec = (await client.get("/openapi.json")).json()
    tried: list[str] = []
    for template, operations in spec["paths"].items():
        for method, operation in operations.items():
            parameters = [
                p for p in operation.get("parameters", []) if p["in"] in ("path", "query")
            ]
            for parameter in parameters:
                bad = bad_value(parameter["schema"], spec)
                if bad is None:
                    continue
                where = f"{parameter['in']}.{parameter['name']}"
                if parameter["in"] == "path":
                    if bad != NUL_TEXT:
                        continue
                    url, params = path_of(template, parameters, parameter["name"]), {}
                else:
                    url, params = path_of(template, parameters), {parameter["name"]: str(bad)}
                response = await client.request(method, url, params=params)
                tried.append(f"{method} {template} {where}")
                assert response.status_code == 422, (method, template, where, response.text)
                assert response.headers["content-type"] == "application/problem+json"
                assert where in fields_named(response), (method, template, response.text)

            content = operation.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            if schema is None or (method, template) in REFUSED_BEFORE_THE_BODY:
                continue
            base = plausible(schema, spec)
            for at, bad in leaves(schema, spec):
                body = with_value(base, schema, spec, at, bad)
                response = await client.request(method, path_of(template, parameters), json=body)
                where = ".".join(["body", *map(str, at)])
                tried.append(f"{method} {template} {where}")
                assert response.status_code == 422, (method, template, where, response.text)
                assert where in fields_named(response), (method, template, where, response.text)
    assert len(tried) > 5, tried  # the walk reached the inputs
    print(f"{name}: {len(tried)} inputs refused")
