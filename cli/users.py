"""`orderguard users add|list|disable`: the console's people, straight in the notifier's schema
(the console lives in the notifier; see the README)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from orderguard.services.notifier.bootstrap import DEFINITION as NOTIFIER
from orderguard.services.notifier.console import people
from orderguard.services.notifier.console.pages import MIN_PASSWORD, parse_memberships
from orderguard.shared.db import Connection, apply_migrations, create_pool
from orderguard.shared.settings import SCHEMAS, Settings

users_app = typer.Typer(help="People of the console: local accounts.", no_args_is_help=True)
T = TypeVar("T")

DataDir = Annotated[
    Path,
    typer.Option(
        help="A running `orderguard up`'s data dir: its database is used;"
        " otherwise ORDERGUARD_DATABASE_URL."
    ),
]


def database_url(data_dir: Path) -> str:
    from orderguard.cli.supervisor import read_status

    status = read_status(data_dir.resolve())
    return str(status["database_url"]) if status else Settings().database_url


async def with_people(url: str, work: Callable[[Connection], Awaitable[T]]) -> T:
    """Run `work` on the notifier's schema, migrated first (a fresh database works too)."""
    schema = SCHEMAS["notifier"]
    await apply_migrations(url, schema, NOTIFIER.migrations)
    pool = await create_pool(url, schema, max_size=1)
    try:
        async with pool.acquire() as conn:
            return await work(conn)
    finally:
        await pool.close()


async def first_admin_password(url: str) -> str | None:
    """For `orderguard up`: an admin with a one-time password when there is nobody yet."""
    return await with_people(url, people.ensure_first_admin)


@users_app.command("add")
def add(
    login: Annotated[str, typer.Argument(help="What the person signs in with")],
    name: Annotated[str, typer.Option(help="Display name (default: the login)")] = "",
    team: Annotated[
        list[str] | None,
        typer.Option(help="team or team:role (operator, lead); repeatable, e.g. warehouse:lead"),
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="May manage people and routing")] = False,
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, help="Asked if not given"
        ),
    ] = "",
    data_dir: DataDir = Path(".orderguard"),
) -> None:
    try:
        teams = parse_memberships(",".join(team or []))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--team") from None
    if len(password) < MIN_PASSWORD:
        raise typer.BadParameter(f"at least {MIN_PASSWORD} characters", param_hint="--password")

    async def create(conn: Connection) -> people.Person:
        return await people.add(conn, login, name or login, password, teams=teams, is_admin=admin)

    try:
        person = asyncio.run(with_people(database_url(data_dir), create))
    except people.PersonExists:
        typer.echo(f"users: {login!r} exists already", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"added {person.login} ({_describe(person)})")


@users_app.command("list")
def list_(data_dir: DataDir = Path(".orderguard")) -> None:
    everyone = asyncio.run(with_people(database_url(data_dir), people.all_people))
    for person in everyone:
        typer.echo(f"{person.login:<20} {person.display_name:<24} {_describe(person)}")


@users_app.command("disable")
def disable(
    login: Annotated[str, typer.Argument()], data_dir: DataDir = Path(".orderguard")
) -> None:
    """Disable an account; its sessions end at once."""

    async def run(conn: Connection) -> None:
        await people.disable(conn, login)

    try:
        asyncio.run(with_people(database_url(data_dir), run))
    except people.UnknownPerson:
        typer.echo(f"users: no {login!r}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"disabled {login}")


def _describe(person: people.Person) -> str:
    teams = ", ".join(f"{team}:{role}" for team, role in sorted(person.teams.items()))
    flags = [f for f, on in (("admin", person.is_admin), ("disabled", person.disabled)) if on]
    return "; ".join(filter(None, [teams or "no team", *flags]))
