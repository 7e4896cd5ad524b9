"""What every console page module shares: the errors that become a redirect or an error page,
the signed-in person, form reading, and the kit of renderer and guards a page module gets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import HTMLResponse

from orderguard.services.notifier.console import people, sessions
from orderguard.services.notifier.console.service_client import (
    Service,
    ServiceClient,
    service_client,
)
from orderguard.shared.runtime import Runtime


class Redirect(Exception):
    def __init__(self, to: str) -> None:
        self.to = to


class Denied(Exception):
    def __init__(self, status: int, message_key: str) -> None:
        self.status = status
        self.message_key = message_key


@dataclass(frozen=True)
class SignedIn:
    person: people.Person
    session: sessions.Session
    token: str


async def form_lists(request: Request) -> dict[str, list[str]]:
    return parse_qs((await request.body()).decode(), keep_blank_values=True)


async def form(request: Request) -> dict[str, str]:
    """An urlencoded form body as single values (the console posts no files)."""
    return {k: v[-1] for k, v in (await form_lists(request)).items()}


@dataclass(frozen=True)
class PageKit:
    """Handed by pages.build_router to each page module: `render(request, template, status,
    signed_in, **context)`, and the dependencies `worker` (signed in, password set) and `admin`
    (a worker who is an admin; 403 otherwise)."""

    runtime: Runtime
    render: Callable[..., HTMLResponse]
    worker: Any
    admin: Any

    def client_of(self, service: Service) -> ServiceClient:
        """The client of another service's API; 503 (in words) when it is not configured."""
        client = service_client(self.runtime, service)
        if client is None:
            raise Denied(503, f"no_{service}_service")
        return client

    def not_found(self, request: Request, me: SignedIn, message: str) -> HTMLResponse:
        """The error page for a thing another service does not know, in its words."""
        return self.render(request, "error.html", 404, signed_in=me, message=message)
