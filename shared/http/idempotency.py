"""Idempotency-Key for HTTP writes: a retried request gets the first answer, never a second effect."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
from fastapi import Header
from pydantic import BaseModel

from orderguard.shared.db import Connection
from orderguard.shared.http.problems import Problem
from orderguard.shared.uow import UnitOfWork

IdempotencyKey = Header(default=None, alias="Idempotency-Key", min_length=1, max_length=200)


def request_fingerprint(body: Any) -> str:
    """A request body's hash; a model is taken as its JSON form (dumped only when a key asks)."""
    if isinstance(body, BaseModel):
        body = body.model_dump(mode="json")
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def stored_response(
    conn: Connection, key: str, route: str, request_hash: str
) -> tuple[int, Any] | None:
    """The response remembered for this key, or None. The same key with another body is an error."""
    row = await conn.fetchrow(
        "SELECT request_hash, status_code, response FROM idempotency_keys"
        " WHERE idempotency_key = $1 AND route = $2",
        key,
        route,
    )
    if row is None:
        return None
    if row["request_hash"] != request_hash:
        raise Problem(
            422,
            "idempotency-key-reused",
            "Idempotency-Key reused with a different request",
            "Use a new Idempotency-Key for a different request.",
        )
    return row["status_code"], row["response"]


@dataclass(frozen=True, slots=True)
class RememberedResponse:
    """A response to store with the request's effect, in the unit of work's last statement
    (`UnitOfWork.ride`); a concurrent twin fails on the key."""

    key: str
    route: str
    request_hash: str
    status_code: int
    response: Any

    def insert(self, first: int) -> tuple[str, str, list[Any]]:
        return (
            "INSERT INTO idempotency_keys"
            " (idempotency_key, route, request_hash, status_code, response)"
            f" VALUES (${first}, ${first + 1}, ${first + 2}, ${first + 3}, ${first + 4})",
            "",
            [self.key, self.route, self.request_hash, self.status_code, self.response],
        )


Operation = Callable[[UnitOfWork], Awaitable[tuple[int, Any]]]


async def run_once_per_key(
    pool: asyncpg.Pool, schema: str, key: str | None, route: str, body: Any, operation: Operation
) -> tuple[int, Any, bool]:
    """Run `operation` in a unit of work; with an Idempotency-Key, at most once per key and route.

    Returns (status, response, replayed). A twin request racing on the same key loses on the
    key's primary key when it stores its response; it rolls back and answers what the winner stored.
    """
    fingerprint = request_fingerprint(body) if key is not None else ""
    try:
        async with UnitOfWork(pool, schema) as uow:
            # Read before the unit's transaction (none yet): a committed answer is all it can see.
            if key is not None and (
                stored := await stored_response(uow.session, key, route, fingerprint)
            ):
                return stored[0], stored[1], True
            status, response = await operation(uow)
            if key is not None:
                uow.ride(RememberedResponse(key, route, fingerprint, status, response))
            await uow.commit()
            return status, response, False
    except asyncpg.UniqueViolationError as exc:
        if key is None or exc.table_name != "idempotency_keys":
            raise
    async with pool.acquire() as conn:
        stored = await stored_response(conn, key, route, fingerprint)
    if stored is None:  # the winner's row is committed before our insert fails
        raise RuntimeError("idempotency key conflict without a stored response")
    return stored[0], stored[1], True
