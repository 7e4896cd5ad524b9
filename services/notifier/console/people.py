"""People of the console: local accounts with Argon2id password hashes, team memberships with
a role per team, and the admin flag. Teams are the routing file's teams."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from orderguard.shared.db import Connection

TeamRole = Literal["operator", "lead"]
ROLES: tuple[TeamRole, ...] = ("operator", "lead")

# argon2-cffi's defaults follow RFC 9106's second recommendation (Argon2id, 64 MiB, t=3).
_hasher = PasswordHasher()
# Verified when the login is unknown, so a wrong login costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class PersonExists(Exception):
    pass


class UnknownPerson(Exception):
    pass


@dataclass(frozen=True)
class Person:
    id: uuid.UUID
    login: str
    display_name: str
    is_admin: bool
    must_change_password: bool
    disabled: bool
    teams: dict[str, TeamRole] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        """How timelines and events name this person (shared.actor's `person:<id>` form)."""
        return f"person:{self.login}"

    def may_see(self, team: str) -> bool:
        return self.is_admin or team in self.teams

    def leads(self, team: str) -> bool:
        return self.is_admin or self.teams.get(team) == "lead"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _person(row: Any, memberships: list[Any]) -> Person:
    return Person(
        id=row["id"],
        login=row["login"],
        display_name=row["display_name"],
        is_admin=row["is_admin"],
        must_change_password=row["must_change_password"],
        disabled=row["disabled_at"] is not None,
        teams={m["team"]: m["role"] for m in memberships if m["person_id"] == row["id"]},
    )


async def add(
    conn: Connection,
    login: str,
    display_name: str,
    password: str | None,
    *,
    teams: dict[str, TeamRole] | None = None,
    is_admin: bool = False,
    must_change_password: bool = False,
) -> Person:
    person_id = uuid.uuid4()
    async with conn.transaction():
        try:
            await conn.execute(
                "INSERT INTO console_people (id, login, display_name, password_hash, is_admin,"
                " must_change_password) VALUES ($1, $2, $3, $4, $5, $6)",
                person_id,
                login,
                display_name,
                hash_password(password) if password else None,
                is_admin,
                must_change_password,
            )
        except asyncpg.UniqueViolationError:
            raise PersonExists(login) from None
        await conn.executemany(
            "INSERT INTO console_memberships (person_id, team, role) VALUES ($1, $2, $3)",
            [(person_id, team, role) for team, role in (teams or {}).items()],
        )
    found = await by_id(conn, person_id)
    assert found is not None
    return found


async def by_id(conn: Connection, person_id: uuid.UUID) -> Person | None:
    row = await conn.fetchrow("SELECT * FROM console_people WHERE id = $1", person_id)
    if row is None:
        return None
    memberships = await conn.fetch(
        "SELECT * FROM console_memberships WHERE person_id = $1", person_id
    )
    return _person(row, memberships)


async def by_login(conn: Connection, login: str) -> Person | None:
    person_id = await conn.fetchval("SELECT id FROM console_people WHERE login = $1", login)
    return await by_id(conn, person_id) if person_id is not None else None


async def members_of(conn: Connection, team: str) -> list[Person]:
    """The enabled members of a team, by login (whom a lead may give the team's work to)."""
    return [p for p in await all_people(conn) if team in p.teams and not p.disabled]


async def all_people(conn: Connection) -> list[Person]:
    rows = await conn.fetch("SELECT * FROM console_people ORDER BY login")
    memberships = await conn.fetch("SELECT * FROM console_memberships")
    return [_person(row, memberships) for row in rows]


async def display_names(conn: Connection) -> dict[str, str]:
    """Actor string -> display name, for timelines that name people."""
    rows = await conn.fetch("SELECT login, display_name FROM console_people")
    return {f"person:{r['login']}": r["display_name"] for r in rows}


async def authenticate(conn: Connection, login: str, password: str) -> Person | None:
    """The enabled person with this login and password, else None (same cost either way)."""
    row = await conn.fetchrow(
        "SELECT id, password_hash, disabled_at FROM console_people WHERE login = $1", login
    )
    stored = row["password_hash"] if row is not None and row["password_hash"] else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row["disabled_at"] is not None:
        return None
    if _hasher.check_needs_rehash(stored):
        await conn.execute(
            "UPDATE console_people SET password_hash = $2 WHERE id = $1",
            row["id"],
            hash_password(password),
        )
    return await by_id(conn, row["id"])


async def set_password(conn: Connection, person_id: uuid.UUID, password: str) -> None:
    await conn.execute(
        "UPDATE console_people SET password_hash = $2, must_change_password = false WHERE id = $1",
        person_id,
        hash_password(password),
    )


async def disable(conn: Connection, login: str) -> None:
    """Disable the account and end its sessions at once."""
    async with conn.transaction():
        person_id = await conn.fetchval(
            "UPDATE console_people SET disabled_at = coalesce(disabled_at, now())"
            " WHERE login = $1 RETURNING id",
            login,
        )
        if person_id is None:
            raise UnknownPerson(login)
        await conn.execute("DELETE FROM console_sessions WHERE person_id = $1", person_id)


async def ensure_first_admin(conn: Connection, login: str = "admin") -> str | None:
    """On a deployment without people, create an admin with a one-time password (to be changed
    at first sign-in) and return it; None when people exist already."""
    async with conn.transaction():
        await conn.execute("LOCK TABLE console_people IN EXCLUSIVE MODE")
        if await conn.fetchval("SELECT count(*) FROM console_people"):
            return None
        password = secrets.token_urlsafe(12)
        await conn.execute(
            "INSERT INTO console_people (id, login, display_name, password_hash, is_admin,"
            " must_change_password) VALUES ($1, $2, 'Administrator', $3, true, true)",
            uuid.uuid4(),
            login,
            hash_password(password),
        )
    return password
