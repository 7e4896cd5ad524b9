"""The console's calls to the other services' APIs (order, aftersales, logistics), server-side,
on behalf of the signed-in person: the console's own key (scope `delegate`) plus
X-Acting-Person, so timelines and events name the person. Problem+json answers become one
sentence to show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import httpx

from orderguard.services.notifier.console.people import Person
from orderguard.services.notifier.settings import NotifierSettings
from orderguard.shared.http.auth import DELEGATE, acting_person_headers
from orderguard.shared.runtime import Runtime
from orderguard.shared.settings import Settings

TIMEOUT_S = 10.0
Service = Literal["order", "aftersales", "logistics"]


class ServiceError(Exception):
    """What went wrong, in words a person can read."""


@dataclass
class ServiceClient:
    service: Service
    http: httpx.AsyncClient

    async def send(
        self,
        acting: str | Person,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """The answer as it came (for files); ServiceError for none or a problem. `acting`: the
        person (or their login) the request is made for."""
        # A person's display name goes along, for the timelines to store (shared/http/auth.py).
        acting_as = (
            acting_person_headers(acting)
            if isinstance(acting, str)
            else acting_person_headers(acting.login, acting.display_name)
        )
        try:
            response = await self.http.request(
                method, path, headers={**(headers or {}), **acting_as}, **kwargs
            )
        except httpx.HTTPError as exc:
            raise ServiceError(f"The {self.service} service did not answer ({exc!s}).") from None
        if response.status_code >= 400:
            raise ServiceError(words_of(self.service, response))
        return response

    async def call(self, acting: str | Person, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer."""
        return (await self.send(acting, method, path, **kwargs)).json()


def words_of(service: str, response: httpx.Response) -> str:
    """A problem+json answer as `title: detail`; anything else as its status."""
    try:
        problem = response.json()
    except ValueError:
        return f"The {service} service answered {response.status_code}."
    if isinstance(problem, dict) and problem.get("title"):
        detail = problem.get("detail")
        return f"{problem['title']}: {detail}" if detail else str(problem["title"])
    return f"The {service} service answered {response.status_code}."


def console_key(settings: Settings) -> str | None:
    """The key the console presents: its own if configured, else one of this deployment's keys
    that may act for people."""
    own = settings.section(NotifierSettings)
    if own.console_api_key is not None:
        return own.console_api_key.get_secret_value()
    for key, scopes in settings.api_keys.items():
        if "*" in scopes or DELEGATE in scopes:
            return key.get_secret_value()
    return None


def url_of(settings: Settings, service: Service) -> str | None:
    own = settings.section(NotifierSettings)
    urls = {
        "order": own.console_order_url,
        "aftersales": own.console_aftersales_url,
        "logistics": own.console_logistics_url,
    }
    return urls[service]


def service_client(runtime: Runtime, service: Service) -> ServiceClient | None:
    """The client of `service`, made once per process; None when its URL is not configured."""

    def build() -> ServiceClient | None:
        settings = runtime.settings
        key = console_key(settings)
        url = url_of(settings, service)
        if not url or key is None:
            return None
        return ServiceClient(
            service,
            httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=TIMEOUT_S),
        )

    return runtime.once(client_slot(service), build)


def client_slot(service: Service) -> str:
    """The runtime's slot for the client (tests put an in-process one there)."""
    return f"console.{service}_client"
