"""Idempotency-Key for HTTP writes: a retried request gets the first answer, never a second effect."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from fastapi import Header

from orderguard.shared.http.problems import Problem
from orderguard.shared.uow import UnitOfWork

IdempotencyKey = Header(default=None, alias="Idempotency-Key", min_length=1, max_length=200)


def request_fingerprint(body: Any) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def stored_response(uow: UnitOfWork, key: str, route: str, request_hash: str) -> tuple[int, Any] | None:
    """The response remembered for this key, or None. The same key with another body is an error."""
    row = await uow.conn.fetchrow(
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


async def remember_response(
    uow: UnitOfWork, key: str, route: str, request_hash: str, status_code: int, response: Any
) -> None:
    """Store the response in the request's own transaction; a concurrent twin fails on the key."""
    await uow.conn.execute(
        "INSERT INTO idempotency_keys (idempotency_key, route, request_hash, status_code, response)"
        " VALUES ($1, $2, $3, $4, $5)",
        key,
        route,
        request_hash,
        status_code,
        response,
    )
