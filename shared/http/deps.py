"""Typed dependencies every service's routes declare: the runtime, reads (the pool) or a read
snapshot, writes in a unit of work (idempotent with an Idempotency-Key), and who is asking.

Routes live in module-level routers and name what they need in their signature
(`runtime: RuntimeDep`, `conn: Conn`, `writes: Writes`, `actor: ActorOf`...). Who a request
comes from is decided here only: API keys today, a console's signed-in person later.

Every dependency here is `async def`, even when it awaits nothing: FastAPI runs a plain `def`
dependency in its thread pool, a thread hop per dependency per request (a quarter of a
`POST /orders` under load, py-spy). And each takes what it needs from the request rather than
from other dependencies where it can: FastAPI solves every sub-dependency of every request
anew, cached or not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, cast

from asyncpg.pool import PoolConnectionProxy
from fastapi import Depends, Request

from orderguard.shared.actor import API_KEY, PERSON, Actor
from orderguard.shared.db import Connection
from orderguard.shared.http.auth import Caller, caller_with_scope
from orderguard.shared.http.idempotency import IdempotencyKey, run_once_per_key
from orderguard.shared.http.responses import JSONBody
from orderguard.shared.runtime import Runtime
from orderguard.shared.uow import UnitOfWork


async def runtime_of(request: Request) -> Runtime:
    """The started service this app serves (`build_app` puts it on the app)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]


async def reads(request: Request) -> Connection:
    """Where a route reads outside a transaction: the pool, which runs each statement on a
    pooled connection and takes it back at once (no round trip either way). Not a generator
    dependency holding a connection for the request: FastAPI's exit stack for one cost ~7% of
    a `GET /orders/{id}` (py-spy)."""
    # Typed as what it stands for: the pool has the statement methods reads call.
    return cast(Connection, request.app.state.runtime.pool)


async def snapshot(request: Request) -> AsyncIterator[PoolConnectionProxy]:
    """A read-only repeatable-read transaction: an aggregate and its timeline read together."""
    async with (
        request.app.state.runtime.pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        yield conn


Conn = Annotated[Connection, Depends(reads)]
Snapshot = Annotated[PoolConnectionProxy, Depends(snapshot, scope="function")]

Operation = Callable[[UnitOfWork], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True)
class WriteContext:
    """Runs a route's write in one unit of work; with an Idempotency-Key, at most once per key
    and route (a retry gets the first answer, marked Idempotent-Replayed)."""

    runtime: Runtime
    key: str | None
    route: str

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.runtime.pool, self.runtime.schema)

    async def once(
        self, body: Any, operation: Operation, location: Callable[[Any], str] | None = None
    ) -> JSONBody:
        """`operation` answers (status, JSON body); `location` names a created resource (201).
        `body` is what an Idempotency-Key's request is compared by: the request's model
        (dumped only when a key is given) or a dict."""
        status, response, replayed = await run_once_per_key(
            self.runtime.pool, self.runtime.schema, self.key, self.route, body, operation
        )
        headers = {"Location": location(response)} if status == 201 and location else {}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return JSONBody(response, status_code=status, headers=headers)


async def write_context(
    request: Request, idempotency_key: str | None = IdempotencyKey
) -> WriteContext:
    # The concrete path: a key is remembered per resource, not per route template.
    return WriteContext(request.app.state.runtime, idempotency_key, _route_key(request))


def _route_key(request: Request) -> str:
    """The method and concrete path, the path as `request.url.path` spells it (Starlette's URL
    escapes these three) without building the URL (host parsing) on every write."""
    path = request.scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    return f"{request.method} {path}"


Writes = Annotated[WriteContext, Depends(write_context)]


def actor_of(caller: Caller) -> Actor:
    """The actor a timeline records for a caller: the person a console key acts for, else
    the key."""
    if caller.person is not None:
        return Actor(PERSON, caller.person, caller.person_name)
    return Actor(API_KEY, caller.name)


def require_actor(scope: str) -> Callable[..., Awaitable[Actor]]:
    """A dependency: the caller, who must hold `scope`, as the actor of what the route does."""

    async def actor(request: Request) -> Actor:
        return actor_of(caller_with_scope(request, scope))

    actor.needs_api_key = True  # type: ignore[attr-defined]  # auth.document_api_keys
    return actor
