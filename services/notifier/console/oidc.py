"""OpenID Connect sign-in to the console: authorization code with PKCE (S256), state and nonce,
through authlib. authlib checks the ID token: signature (the provider's JWKS), issuer (the
configured one), audience and authorized party (our client id), expiry, issue time, nonce and
`at_hash`. The person is found by (issuer, subject) and created or updated from the claims; their
teams and roles come from the configured claims (README: "OpenID Connect sign-in").

The pending sign-in (state, nonce, PKCE verifier) is bound to the browser by a cookie whose
token is stored only as a digest, and used once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import authlib.deprecate  # noqa: F401  (sets its "always" filter before ours goes in front)
from joserfc.errors import JoseError

with warnings.catch_warnings():
    # authlib 1.9 nudges towards httpx2 (a fork) but works with httpx, the project's client.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.starlette_client import OAuth

from orderguard.services.notifier.console import people
from orderguard.services.notifier.settings import ConsoleOidcSettings
from orderguard.shared.db import Connection
from orderguard.shared.logging import get_logger

PENDING_FOR = timedelta(minutes=10)
# A login goes into timelines, events and X-Acting-Person (shared/http/auth.py's pattern).
_LOGIN = re.compile(r"[A-Za-z0-9._@-]{1,64}")

log = get_logger(__name__)


class SignInRefused(Exception):
    """The provider's answer cannot sign anyone in; `reason` is an i18n key of the console."""

    def __init__(self, reason: str, why: str) -> None:
        super().__init__(why)
        self.reason = reason


@dataclass(frozen=True)
class Grants:
    teams: dict[str, people.TeamRole]
    is_admin: bool


def parse_grant(grant: str, teams: tuple[str, ...]) -> tuple[str, people.TeamRole] | None:
    """`admin` -> None (the admin flag); `warehouse` / `warehouse:lead` -> (team, role)."""
    if grant == "admin":
        return None
    team, _, role = grant.partition(":")
    role = role or "operator"
    if team not in teams or role not in people.ROLES:
        raise ValueError(
            f"grant {grant!r}: one of admin, <team>, <team>:lead; teams: {', '.join(teams)}"
        )
    return team, role


def grants_of(claims: Mapping[str, Any], settings: ConsoleOidcSettings) -> Grants:
    """Teams, roles and the admin flag from the ID token's claims: every group of the groups
    claim that `group_map` names, plus the roles claim's own grants; the higher role wins.
    Unknown groups and malformed grants are ignored (a provider has many groups)."""
    from orderguard.shared.topics import TEAMS

    grants: list[str] = []
    for group in _strings(claims.get(settings.groups_claim)):
        grants += settings.group_map.get(group, [])
    grants += _strings(claims.get(settings.roles_claim))
    teams: dict[str, people.TeamRole] = {}
    is_admin = False
    for grant in grants:
        try:
            parsed = parse_grant(grant, TEAMS)
        except ValueError:
            continue
        if parsed is None:
            is_admin = True
        elif teams.get(parsed[0]) != "lead":
            teams[parsed[0]] = parsed[1]
    return Grants(teams, is_admin)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Provider:
    """The configured provider, its discovery document and keys fetched once (authlib)."""

    def __init__(self, settings: ConsoleOidcSettings) -> None:
        self.settings = settings
        self.issuer = settings.issuer.rstrip("/")
        self.name = settings.provider_name
        registry = OAuth()
        self._client: Any = registry.register(
            "console",
            client_id=settings.client_id,
            client_secret=(
                settings.client_secret.get_secret_value() if settings.client_secret else None
            ),
            server_metadata_url=f"{self.issuer}/.well-known/openid-configuration",
            client_kwargs={"scope": settings.scopes, "code_challenge_method": "S256"},
        )

    async def begin(self, conn: Connection, redirect_uri: str, now: datetime) -> tuple[str, str]:
        """A new sign-in: (the browser's cookie token, the provider's authorization URL)."""
        metadata = await self._client.load_server_metadata()
        if metadata.get("issuer", "").rstrip("/") != self.issuer:
            # OpenID Connect Discovery 1.0, 4.3: the document must be the configured issuer's.
            raise SignInRefused("oidc_failed", "discovery issuer differs from the configured one")
        flow = await self._client.create_authorization_url(redirect_uri)
        token = secrets.token_urlsafe(32)
        await conn.execute("DELETE FROM console_oidc_pending WHERE expires_at < $1", now)
        await conn.execute(
            "INSERT INTO console_oidc_pending (token_digest, state, nonce, code_verifier,"
            " redirect_uri, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            _digest(token),
            flow["state"],
            flow["nonce"],
            flow["code_verifier"],
            redirect_uri,
            now + PENDING_FOR,
        )
        return token, flow["url"]

    async def finish(
        self, conn: Connection, token: str | None, query: Mapping[str, str], now: datetime
    ) -> Mapping[str, Any]:
        """The provider sent the browser back: check the state against this browser's pending
        sign-in (used once), redeem the code with the PKCE verifier, and return the ID token's
        claims once authlib has validated it."""
        pending = None
        if token:
            pending = await conn.fetchrow(
                "DELETE FROM console_oidc_pending WHERE token_digest = $1 RETURNING *",
                _digest(token),
            )
        if pending is None or pending["expires_at"] <= now:
            raise SignInRefused("oidc_failed", "no pending sign-in in this browser")
        if not secrets.compare_digest(pending["state"], query.get("state", "")):
            raise SignInRefused("oidc_failed", "state does not match")
        if "error" in query or not query.get("code"):
            raise SignInRefused("oidc_failed", f"provider answered {query.get('error')!r}")
        try:
            answer = await self._client.fetch_access_token(
                redirect_uri=pending["redirect_uri"],
                code=query["code"],
                code_verifier=pending["code_verifier"],
            )
            claims = await self._client.parse_id_token(
                answer,
                nonce=pending["nonce"],
                claims_options={
                    "iss": {"essential": True, "values": [self.issuer]},
                    "aud": {"essential": True, "values": [self.settings.client_id]},
                },
            )
        except (OAuthError, JoseError) as exc:
            raise SignInRefused("oidc_failed", f"token refused: {type(exc).__name__}") from None
        if claims is None:
            raise SignInRefused("oidc_failed", "no ID token in the answer")
        return dict(claims)


async def person_of(
    conn: Connection, issuer: str, claims: Mapping[str, Any], grants: Grants
) -> people.Person:
    """The person these claims are: found by (issuer, subject), else created with login
    `preferred_username` (or `sub`); display name, teams and admin flag follow the provider at
    every sign-in. A login already used by another person (a local account) is refused."""
    subject = str(claims["sub"])
    preferred = claims.get("preferred_username")
    login = next(
        (c for c in (preferred, subject) if isinstance(c, str) and _LOGIN.fullmatch(c)), None
    )
    name = claims.get("name") if isinstance(claims.get("name"), str) else None
    async with conn.transaction():
        found = await conn.fetchrow(
            "SELECT id, disabled_at FROM console_people"
            " WHERE oidc_issuer = $1 AND oidc_subject = $2 FOR UPDATE",
            issuer,
            subject,
        )
        if found is not None and found["disabled_at"] is not None:
            # Disabled here stays disabled, whatever the provider says.
            raise SignInRefused("oidc_failed", "person disabled")
        person_id = found["id"] if found is not None else None
        if person_id is None:
            if login is None:
                raise SignInRefused("oidc_failed", "neither preferred_username nor sub is a login")
            person_id = uuid.uuid4()
            try:
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO console_people (id, login, display_name, is_admin,"
                        " oidc_issuer, oidc_subject) VALUES ($1, $2, $3, $4, $5, $6)",
                        person_id,
                        login,
                        (name or login)[:200],
                        grants.is_admin,
                        issuer,
                        subject,
                    )
            except asyncpg.UniqueViolationError:
                raise SignInRefused("oidc_login_taken", "login used by another person") from None
        else:
            await conn.execute(
                "UPDATE console_people SET display_name = coalesce($2, display_name),"
                " is_admin = $3 WHERE id = $1",
                person_id,
                name[:200] if name else None,
                grants.is_admin,
            )
        await conn.execute("DELETE FROM console_memberships WHERE person_id = $1", person_id)
        await conn.executemany(
            "INSERT INTO console_memberships (person_id, team, role) VALUES ($1, $2, $3)",
            [(person_id, team, role) for team, role in grants.teams.items()],
        )
    person = await people.by_id(conn, person_id)
    assert person is not None
    return person
