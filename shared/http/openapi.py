"""The OpenAPI document says what the API really answers: every error is problem+json, and each
operation lists the error statuses the shared machinery gives it (checked by schemathesis in
tests/fault/test_http_conformance.py).

Routes declare their success responses and the errors of their own domain (`responses=`); the
errors every route of a kind can get are added here, once: 401/403 where an API key is needed,
404 where the path names a resource, 400 (unparsable body), 409 (a conflict with the current
state, an Idempotency-Key reused) and 413 (body over the limit) on writes, and 422 (validation).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from orderguard.shared.http.auth import document_api_keys
from orderguard.shared.http.problems import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
}
VALIDATION_PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "ValidationProblem",
    "description": "RFC 9457 problem details; `errors` names each field that failed validation",
    "allOf": [
        {"$ref": "#/components/schemas/Problem"},
        {
            "type": "object",
            "properties": {
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "message"],
                        "properties": {
                            "field": {"type": "string"},
                            "message": {"type": "string"},
                            "code": {"type": "string"},
                        },
                    },
                }
            },
        },
    ],
}
COMMON: dict[str, str] = {
    "400": "The body is not valid JSON",
    "401": "No API key, or one not recognised",
    "403": "The API key lacks the scope",
    "404": "Not found",
    "409": "Conflicts with the current state, or an Idempotency-Key reused with another body",
    "413": "The body is over the size limit",
    "422": "The request is invalid; `errors` names each field",
}
WRITES = {"post", "put", "patch", "delete"}
METHODS = WRITES | {"get", "head", "options"}


def _problem(description: str, status: str) -> dict[str, Any]:
    schema = "ValidationProblem" if status == "422" else "Problem"
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _error_statuses(path: str, method: str, operation: dict[str, Any]) -> set[str]:
    statuses = {"422"} if operation.get("parameters") or operation.get("requestBody") else set()
    if operation.get("security"):
        # 422 too: a delegating key's X-Acting-Person header that names no valid login.
        statuses |= {"401", "403", "422"}
    if "{" in path:
        statuses.add("404")
    if method in WRITES:
        statuses |= {"409"}
        if operation.get("requestBody"):
            statuses |= {"400", "413", "422"}
    return statuses


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a generated OpenAPI document in place: problem+json errors, common statuses."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Problem"] = PROBLEM_SCHEMA
    components["ValidationProblem"] = VALIDATION_PROBLEM_SCHEMA
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            if "ops" in operation.get("tags", ()):
                continue  # health, readiness and metrics answer in their own formats
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status in _error_statuses(path, method, operation):
                responses.setdefault(status, {"description": COMMON[status]})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    described = response.get("description") or COMMON.get(status, "Error")
                    response.clear()
                    response.update(_problem(described, status))
    return schema


def install_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            document_api_keys(app, schema)
            app.openapi_schema = document_problems(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
