"""The console's calls to the order service, server-side, on behalf of the signed-in person:
the console's own key (scope `delegate`) plus X-Acting-Person, so the order's timeline and
events name the person. Problem+json answers become one sentence to show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from orderguard.services.notifier.console.people import Person
from orderguard.shared.http.auth import DELEGATE, acting_person_headers
from orderguard.shared.runtime import Runtime
from orderguard.shared.settings import Settings

TIMEOUT_S = 10.0


class OrderServiceError(Exception):
    """What went wrong, in words a person can read."""


@dataclass
class OrderClient:
    http: httpx.AsyncClient

    async def call(
        self, acting: str | Person, method: str, path: str, **kwargs: Any
    ) -> dict[str, Any]:
        """`acting`: the person (their login and display name go along), or only a login."""
        headers = (
            acting_person_headers(acting)
            if isinstance(acting, str)
            else acting_person_headers(acting.login, acting.display_name)
        )
        try:
            response = await self.http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise OrderServiceError(f"The order service did not answer ({exc!s}).") from None
        if response.status_code >= 400:
            raise OrderServiceError(words_of(response))
        return response.json()  # type: ignore[no-any-return]


def words_of(response: httpx.Response) -> str:
    """A problem+json answer as `title: detail`; anything else as its status."""
    try:
        problem = response.json()
    except ValueError:
        return f"The order service answered {response.status_code}."
    if isinstance(problem, dict) and problem.get("title"):
        detail = problem.get("detail")
        return f"{problem['title']}: {detail}" if detail else str(problem["title"])
    return f"The order service answered {response.status_code}."


def console_key(settings: Settings) -> str | None:
    """The key the console presents: its own if configured, else one of this deployment's keys
    that may act for people."""
    if settings.console_api_key is not None:
        return settings.console_api_key.get_secret_value()
    for key, scopes in settings.api_keys.items():
        if "*" in scopes or DELEGATE in scopes:
            return key.get_secret_value()
    return None


def order_client(runtime: Runtime) -> OrderClient | None:
    """The client, made once per process; None when no order service is configured."""

    def build() -> OrderClient | None:
        settings = runtime.settings
        key = console_key(settings)
        if not settings.console_order_url or key is None:
            return None
        return OrderClient(
            httpx.AsyncClient(
                base_url=settings.console_order_url,
                headers={"X-API-Key": key},
                timeout=TIMEOUT_S,
            )
        )

    return runtime.once("console.order_client", build)
