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
from urllib.parse import quote, unquote

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from orderguard.shared.http.problems import Problem

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)
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


def require_scope(scope: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency: the request must carry an API key (X-API-Key or Bearer) granting `scope`."""

    # async: FastAPI runs a plain `def` dependency in its thread pool, a hop per request.
    async def check(
        request: Request,
        api_key: str | None = Depends(_api_key_header),
        bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ) -> Caller:
        presented = api_key or (bearer.credentials if bearer else None)
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
            raise Problem(
                422, "validation", "Invalid X-Acting-Person", "1-64 of A-Z a-z 0-9 . _ @ -."
            )
        return Caller(
            scope, key_id, acting_person, _person_name(request.headers.get(ACTING_PERSON_NAME))
        )

    return check


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
