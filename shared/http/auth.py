"""API keys with scopes, from settings. Every API route requires a key; writes require a write scope.

A key that also holds scope `delegate` (the console's) may name the person it acts for in
X-Acting-Person; the request is then that person's: timelines and events record them, not the key.
With it, X-Acting-Person-Name carries the person's display name (UTF-8, percent-encoded, as
headers are ASCII), which timelines store beside the id so they read well outside the console.
It is trusted exactly as far as X-Acting-Person: only from a delegating key, which could name
any person anyway; it is a label, never used to decide anything.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import APIKeyHeader, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from orderguard.shared.http.problems import Problem

API_KEY_HEADER = "X-API-Key"
# The ways to present a key, as the OpenAPI document names them. The check reads the headers
# itself rather than taking these as dependencies: two fewer for FastAPI to solve per request.
SCHEMES = (APIKeyHeader(name=API_KEY_HEADER, auto_error=False), HTTPBearer(auto_error=False))
# Read from the request, not declared as security schemes: FastAPI names every APIKeyHeader
# scheme "APIKeyHeader", so a second one would replace X-API-Key in the OpenAPI document.
ACTING_PERSON = "X-Acting-Person"
ACTING_PERSON_NAME = "X-Acting-Person-Name"
DELEGATE = "delegate"
MAX_PERSON_NAME = 200
# A person's id (the console's login): short and plain, as it goes into timelines and events.
_PERSON_ID = re.compile(r"[A-Za-z0-9._@-]{1,64}")


def _grant_of(request: Request, presented: str) -> tuple[frozenset[str], str] | None:
    """The scopes of the key presented and its short id, or None for an unknown key."""
    scope_by_key: dict[str, frozenset[str]] = request.app.state.settings.scope_by_key
    candidate = presented.encode()
    for key, scopes in scope_by_key.items():
        # Compare every key in constant time so timing reveals nothing about which one is close.
        if hmac.compare_digest(key.encode(), candidate):
            return scopes, _key_id(key)
    return None


@functools.cache  # only configured keys get here: a hash per key, not per request
def _key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Caller:
    """Who made a request: the scope used and a short id of the key that reveals nothing of it,
    or the person a delegating key acts for."""

    scope: str
    key_id: str
    person: str | None = None
    person_name: str | None = None

    @property
    def name(self) -> str:
        # shared.actor's string form: `person:<id>` for a person, the key otherwise.
        return f"person:{self.person}" if self.person else f"{self.scope}#{self.key_id}"


def _presented_key(request: Request) -> str | None:
    """The key in X-API-Key, else in `Authorization: Bearer` (as FastAPI's schemes read them)."""
    api_key = request.headers.get(API_KEY_HEADER)
    if api_key:
        return api_key
    scheme, credentials = get_authorization_scheme_param(request.headers.get("Authorization"))
    return credentials if scheme.lower() == "bearer" and credentials else None


def require_scope(scope: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency: the request must carry an API key (X-API-Key or Bearer) granting `scope`."""

    # async: FastAPI runs a plain `def` dependency in its thread pool, a hop per request.
    async def check(request: Request) -> Caller:
        return caller_with_scope(request, scope)

    check.needs_api_key = True  # type: ignore[attr-defined]  # for document_api_keys
    return check


def caller_with_scope(request: Request, scope: str) -> Caller:
    """Who the request is from, who must hold `scope`; a problem (401, 403, 422) otherwise."""
    presented = _presented_key(request)
    if not presented:
        raise Problem(
            401,
            "unauthenticated",
            "API key required",
            "Send X-API-Key or Authorization: Bearer.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    grant = _grant_of(request, presented)
    if grant is None:
        raise Problem(401, "unauthenticated", "API key not recognised")
    scopes, key_id = grant
    if "*" not in scopes and scope not in scopes:
        raise Problem(
            403, "forbidden", "API key lacks a scope", f"This route needs scope {scope!r}."
        )
    acting_person = request.headers.get(ACTING_PERSON)
    if acting_person is None:
        return Caller(scope, key_id)
    if "*" not in scopes and DELEGATE not in scopes:
        raise Problem(
            403,
            "forbidden",
            "API key may not act for a person",
            f"X-Acting-Person needs a key with scope {DELEGATE!r}.",
        )
    if not _PERSON_ID.fullmatch(acting_person):
        raise Problem(422, "validation", "Invalid X-Acting-Person", "1-64 of A-Z a-z 0-9 . _ @ -.")
    return Caller(
        scope, key_id, acting_person, _person_name(request.headers.get(ACTING_PERSON_NAME))
    )


def _person_name(header: str | None) -> str | None:
    if header is None:
        return None
    try:
        name = unquote(header, errors="strict")
    except UnicodeDecodeError:
        name = ""
    if not 0 < len(name) <= MAX_PERSON_NAME or not name.isprintable():
        raise Problem(
            422,
            "validation",
            "Invalid X-Acting-Person-Name",
            f"1-{MAX_PERSON_NAME} printable characters, UTF-8 percent-encoded.",
        )
    return name


def acting_person_headers(login: str, name: str | None = None) -> dict[str, str]:
    """The headers a delegating client sends to act for a person (the console's)."""
    headers = {ACTING_PERSON: login}
    if name:
        headers[ACTING_PERSON_NAME] = quote(name[:MAX_PERSON_NAME], safe=" ")
    return headers


def document_api_keys(app: FastAPI, schema: dict[str, Any]) -> None:
    """Name the key schemes (SCHEMES) on every operation whose route checks a key, in the
    OpenAPI document, as FastAPI does for security dependencies."""
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    # As FastAPI's own document sees the routes: with the prefixes and dependencies of routers.
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        if not _checks_api_key(route.dependant.dependencies):
            continue
        for scheme in SCHEMES:
            schemes[scheme.scheme_name] = jsonable_encoder(
                scheme.model, by_alias=True, exclude_none=True
            )
        operations = schema.get("paths", {}).get(route.path_format, {})
        for method in route.methods or ():
            if method.lower() in operations:
                operations[method.lower()]["security"] = [
                    {scheme.scheme_name: []} for scheme in SCHEMES
                ]


def _checks_api_key(dependencies: list[Any]) -> bool:
    return any(
        getattr(dependency.call, "needs_api_key", False) or _checks_api_key(dependency.dependencies)
        for dependency in dependencies
    )
