"""PostgreSQL access: a pool per service schema, and migrations applied by the runtime."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

SHARED_MIGRATIONS = Path(__file__).parent / "migrations"

# What repositories are given: a unit of work's connection (a pool's proxy) or a plain one.
Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy


async def _init_connection(conn: asyncpg.Connection) -> None:
    for json_type in ("json", "jsonb"):
        await conn.set_type_codec(
            json_type,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """On release asyncpg rolls back what is open and drops listeners; its default reset adds a
    round trip per release (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) for session state
    we never leave behind: `search_path` is a startup setting, the relay unlocks and unlistens
    itself."""


async def create_pool(database_url: str, schema: str, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections see only `schema` (plus pg_catalog): a service owns its schema."""
    return await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=max_size,
        server_settings={"search_path": schema, "application_name": f"orderguard-{schema}"},
        init=_init_connection,
        reset=_keep_session,
    )


async def wait_for_database(database_url: str, timeout_s: float = 60.0) -> None:
    """Block until PostgreSQL accepts connections: start-up ordering in compose and Kubernetes,
    and a process restarted while its database is being restarted."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            conn = await asyncpg.connect(database_url, timeout=3)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
        else:
            await conn.close()
            return


def _yoyo_url(database_url: str, schema: str) -> str:
    parts = urlsplit(database_url)
    query = dict(parse_qsl(parts.query))
    query["schema"] = schema
    return urlunsplit(("postgresql+psycopg", parts.netloc, parts.path, urlencode(query), ""))


def _apply_migrations_sync(database_url: str, schema: str, sources: list[Path]) -> list[str]:
    import psycopg
    from yoyo import get_backend, read_migrations

    with psycopg.connect(
        database_url.replace("postgres://", "postgresql://", 1), autocommit=True
    ) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    backend = get_backend(_yoyo_url(database_url, schema))
    migrations = read_migrations(*(str(source) for source in sources))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    backend.connection.close()
    return [migration.id for migration in pending]


async def apply_migrations(
    database_url: str, schema: str, service_migrations: Path | None
) -> list[str]:
    """Apply the engine's tables, then the service's own, into the service's schema.

    Returns the ids of the migrations applied now (empty when already current).
    """
    sources = [SHARED_MIGRATIONS] + ([service_migrations] if service_migrations else [])
    return await asyncio.to_thread(_apply_migrations_sync, database_url, schema, sources)
