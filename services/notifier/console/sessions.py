"""Sign-in sessions: a random token in a cookie, only its digest in the database; idle and
absolute expiry; a CSRF token per session for every state-changing request."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from orderguard.shared.db import Connection


@dataclass(frozen=True)
class Session:
    person_id: uuid.UUID
    csrf_token: str
    expires_at: datetime


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def start(
    conn: Connection, person_id: uuid.UUID, now: datetime, absolute: timedelta
) -> tuple[str, Session]:
    """A new session; the token goes into the cookie and is never stored."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO console_sessions (token_digest, person_id, csrf_token, created_at,"
        " last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $4, $5)",
        _digest(token),
        person_id,
        csrf,
        now,
        now + absolute,
    )
    return token, Session(person_id, csrf, now + absolute)


async def resume(conn: Connection, token: str, now: datetime, idle: timedelta) -> Session | None:
    """The live session of this token, touched; None when unknown, idle too long or past its
    absolute expiry (such a session is deleted)."""
    row = await conn.fetchrow(
        "SELECT person_id, csrf_token, last_seen_at, expires_at FROM console_sessions"
        " WHERE token_digest = $1",
        _digest(token),
    )
    if row is None:
        return None
    if row["expires_at"] <= now or row["last_seen_at"] + idle <= now:
        await end(conn, token)
        return None
    # Touch at most once a minute: a page's many requests need not each write.
    if now - row["last_seen_at"] > timedelta(seconds=60):
        await conn.execute(
            "UPDATE console_sessions SET last_seen_at = $2 WHERE token_digest = $1",
            _digest(token),
            now,
        )
    return Session(row["person_id"], row["csrf_token"], row["expires_at"])


async def end(conn: Connection, token: str) -> None:
    await conn.execute("DELETE FROM console_sessions WHERE token_digest = $1", _digest(token))


def csrf_matches(session: Session, presented: str | None) -> bool:
    return presented is not None and secrets.compare_digest(session.csrf_token, presented)
