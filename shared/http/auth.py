"""API keys with scopes, from settings. Every API route requires a key; writes require a write scope."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from orderguard.shared.http.problems import Problem

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


def _scopes_of(request: Request, presented: str) -> frozenset[str] | None:
    scope_by_key: dict[str, frozenset[str]] = request.app.state.settings.scope_by_key
    for key, scopes in scope_by_key.items():
        # Compare every key in constant time so timing reveals nothing about which one is close.
        if hmac.compare_digest(key.encode(), presented.encode()):
            return scopes
    return None


@dataclass(frozen=True)
class Caller:
    """Who made a request: the scope used and a short id of the key that reveals nothing of it."""

    scope: str
    key_id: str

    @property
    def name(self) -> str:
        return f"{self.scope}#{self.key_id}"


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
        scopes = _scopes_of(request, presented)
        if scopes is None:
            raise Problem(401, "unauthenticated", "API key not recognised")
        if "*" not in scopes and scope not in scopes:
            raise Problem(
                403, "forbidden", "API key lacks a scope", f"This route needs scope {scope!r}."
            )
        return Caller(scope, hashlib.sha256(presented.encode()).hexdigest()[:8])

    return check
