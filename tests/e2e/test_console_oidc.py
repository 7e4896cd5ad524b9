"""OpenID Connect sign-in to the console against a real local provider the test starts
(oidc-provider-mock, on authlib): the browser (httpx, following redirects) goes console ->
provider -> console; the person is created from the ID token's claims with their team and
role, sees only that team's queue, and their name is on what they do. A replayed callback, a
wrong state, and a provider login that a local account already has sign nobody in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from e2e import test_console_in_chromium as in_chromium
from e2e.test_console import two_teams
from e2e.test_console_in_chromium import chromium  # noqa: F401  (the browser fixture)
from oidc_provider_mock import User, run_server_in_thread
from testkit import csrf_in, served, tuned

from orderguard.services.notifier.bootstrap import DEFINITION as NOTIFIER
from orderguard.services.notifier.console import oidc, people
from orderguard.services.notifier.settings import ConsoleOidcSettings
from orderguard.shared.runtime import build_app
from orderguard.shared.settings import Settings

CONSOLE = "https://console.test"

ZHAO = User(
    sub="idp-0001",
    claims={
        "preferred_username": "zhao",
        "name": "Zhao Lei",
        "groups": ["wh-staff", "unrelated-group"],
    },
)
# The provider says "wang", a login a local account has already.
IMPOSTOR = User(sub="idp-0002", claims={"preferred_username": "wang", "name": "Not Wang"})


@pytest.fixture
def provider() -> Iterator[str]:
    """A real OpenID Connect provider on a free port; its issuer URL."""
    with run_server_in_thread(require_nonce=True, user_claims=[ZHAO, IMPOSTOR]) as server:
        yield f"http://localhost:{server.server_port}"


def oidc_settings(issuer: str) -> ConsoleOidcSettings:
    return ConsoleOidcSettings(
        issuer=issuer,
        client_id="orderguard-console",
        client_secret="console-secret",  # type: ignore[arg-type]
        provider_name="Test IdP",
        group_map={"wh-staff": ["warehouse"], "og-admins": ["admin"]},
    )


def browser(app: Any) -> httpx.AsyncClient:
    """A browser: the console in-process over https (Secure cookies), the provider over the
    network, following redirects between them."""
    return httpx.AsyncClient(
        mounts={CONSOLE: httpx.ASGITransport(app=app)}, follow_redirects=True, timeout=30
    )


async def through_provider(client: httpx.AsyncClient, sub: str) -> tuple[httpx.Response, str]:
    """Start at the console, pick `sub` on the provider's form; (the final answer, the
    callback URL the provider sent the browser to)."""
    at_provider = await client.get(f"{CONSOLE}/console/oidc/start")
    assert at_provider.status_code == 200 and at_provider.url.path == "/oauth2/authorize"
    asked = parse_qs(urlsplit(str(at_provider.url)).query)
    # Authorization code with PKCE (S256), a state and a nonce.
    assert asked["response_type"] == ["code"] and asked["code_challenge_method"] == ["S256"]
    assert asked["code_challenge"][0] and asked["state"][0] and asked["nonce"][0]
    assert asked["redirect_uri"] == [f"{CONSOLE}/console/oidc/callback"]
    back = await client.post(str(at_provider.url), data={"sub": sub})
    callback = next(str(r.headers["location"]) for r in back.history if r.status_code in (302, 303))
    return back, callback


async def test_a_person_signs_in_with_the_provider_and_works_their_teams_queue(
    settings: Settings, start_service: Any, provider: str
) -> None:
    configured = tuned(settings, notifier={"console_oidc": oidc_settings(provider)})
    notifier, warehouse_item, logistics_item = await two_teams(configured, start_service)
    app = build_app(notifier.runtime)
    async with browser(app) as zhao:
        sign_in_page = await zhao.get(f"{CONSOLE}/console/sign-in")
        assert "Sign in with Test IdP" in sign_in_page.text

        signed_in, callback = await through_provider(zhao, "idp-0001")
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.url.path == "/console/oidc/callback"
        assert 'http-equiv="refresh" content="0; url=/console/"' in signed_in.text
        queue = await zhao.get(f"{CONSOLE}/console/")
        assert queue.status_code == 200 and warehouse_item in queue.text
        assert logistics_item not in queue.text
        assert (await zhao.get(f"{CONSOLE}/console/work-items/{logistics_item}")).status_code == 403

        csrf = csrf_in(queue.text)
        claimed = await zhao.post(
            f"{CONSOLE}/console/work-items/{warehouse_item}/claim",
            data={"csrf_token": csrf},
            follow_redirects=False,
        )
        assert claimed.status_code == 303
        page = (await zhao.get(f"{CONSOLE}/console/work-items/{warehouse_item}")).text
        assert "<td>claimed</td><td>Zhao Lei</td>" in page

        # The callback is good once: replayed, it signs nobody in.
        replayed = await zhao.get(callback)
        assert replayed.status_code == 401 and 'id="oidc-error"' in replayed.text

    item = (await notifier.client.get(f"/work-items/{warehouse_item}")).json()
    assert item["claimed_by"] == "person:zhao"
    assert item["timeline"][-1]["actor"]["id"] == "zhao"
    async with notifier.runtime.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT login, display_name, password_hash, oidc_issuer, oidc_subject, is_admin"
            " FROM console_people WHERE login = 'zhao'"
        )
        roles = await conn.fetch(
            "SELECT team, role FROM console_memberships m JOIN console_people p"
            " ON p.id = m.person_id WHERE p.login = 'zhao'"
        )
    assert dict(row) == {
        "login": "zhao",
        "display_name": "Zhao Lei",
        "password_hash": None,
        "oidc_issuer": provider,
        "oidc_subject": "idp-0001",
        "is_admin": False,
    }
    assert [tuple(r) for r in roles] == [("warehouse", "operator")]

    # The provider now says zhao leads the warehouse team, under a new name: the next sign-in
    # follows it, and it is the same person (found by issuer and subject).
    async with httpx.AsyncClient() as admin_of_provider:
        changed = await admin_of_provider.put(
            f"{provider}/users/idp-0001",
            json={**ZHAO.claims, "name": "Zhao Lei (lead)", "orderguard_roles": ["warehouse:lead"]},
        )
    assert changed.status_code == 204
    async with browser(app) as again:
        signed_in, _ = await through_provider(again, "idp-0001")
        assert signed_in.status_code == 200
        page = (await again.get(f"{CONSOLE}/console/work-items/{warehouse_item}")).text
        assert 'id="reassign-to"' in page and "Zhao Lei (lead)" in page
    async with notifier.runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM console_people WHERE login = 'zhao'") == 1
        # Disabled here stays disabled, whatever the provider says.
        await people.disable(conn, "zhao")
    async with browser(app) as disabled:
        refused, _ = await through_provider(disabled, "idp-0001")
        assert refused.status_code == 401 and 'id="oidc-error"' in refused.text


async def test_a_wrong_state_and_a_login_of_a_local_account_sign_nobody_in(
    settings: Settings, start_service: Any, provider: str
) -> None:
    configured = tuned(settings, notifier={"console_oidc": oidc_settings(provider)})
    notifier, _, _ = await two_teams(configured, start_service)
    app = build_app(notifier.runtime)
    async with browser(app) as client:
        # The provider's "wang" is not the local account wang.
        refused, _ = await through_provider(client, "idp-0002")
        assert refused.status_code == 401 and "belongs to another account" in refused.text
        assert (await client.get(f"{CONSOLE}/console/", follow_redirects=False)).status_code == 303

        at_provider = await client.get(f"{CONSOLE}/console/oidc/start")
        asked = parse_qs(urlsplit(str(at_provider.url)).query)
        forged = await client.get(
            f"{CONSOLE}/console/oidc/callback",
            params={"code": "made-up", "state": asked["state"][0] + "x"},
        )
        assert forged.status_code == 401 and 'id="oidc-error"' in forged.text

        # An ID token whose nonce is not this sign-in's (a replayed token) is refused: the
        # pending sign-in's nonce is changed behind the provider's back.
        at_provider = await client.get(f"{CONSOLE}/console/oidc/start")
        async with notifier.runtime.pool.acquire() as conn:
            await conn.execute("UPDATE console_oidc_pending SET nonce = 'another-sign-in'")
        replayed = await client.post(str(at_provider.url), data={"sub": "idp-0001"})
        assert replayed.status_code == 401 and 'id="oidc-error"' in replayed.text
    async with notifier.runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM console_people WHERE login = 'zhao'") == 0
        wang = await conn.fetchval("SELECT display_name FROM console_people WHERE login = 'wang'")
    assert wang == "Wang Wei"


def test_teams_and_roles_come_from_the_configured_claims() -> None:
    settings = oidc_settings("https://idp.example").model_copy(
        update={"group_map": {"wh": ["warehouse"], "fin-leads": ["finance:lead"], "ops": ["admin"]}}
    )
    grants = oidc.grants_of(
        {
            "groups": ["wh", "fin-leads", "someone-elses"],
            "orderguard_roles": ["warehouse:lead", "nonsense:lead", "risk"],
        },
        settings,
    )
    assert grants == oidc.Grants(
        {"warehouse": "lead", "finance": "lead", "risk": "operator"}, is_admin=False
    )
    assert oidc.grants_of({"groups": "ops wh"}, settings).is_admin
    assert oidc.grants_of({}, settings) == oidc.Grants({}, is_admin=False)
    with pytest.raises(ValueError, match="not admin, <team> or <team>:lead"):
        ConsoleOidcSettings(issuer="https://idp.example", client_id="c", group_map={"g": ["ops"]})


def sign_in_with_the_provider(driver: Any, base: str) -> str:
    """In Chromium: the console's button, the provider's page, back to the console signed in.
    The provider is another site: its redirect back carries the Lax cookie of the pending
    sign-in, and the Strict session cookie is used from the console's own page onwards."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/sign-in")
    driver.find_element(By.ID, "sign-in-oidc").click()
    in_chromium.wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, 'button[name="sub"]'))
    in_chromium.shot(driver, "7-oidc-provider")
    driver.find_element(By.CSS_SELECTOR, 'button[name="sub"][value="idp-0001"]').click()
    me = in_chromium.wait_for(driver, lambda d: d.find_elements(By.ID, "me")).pop()
    in_chromium.shot(driver, "8-oidc-signed-in")
    return str(me.text)


@pytest.fixture
async def served_console(
    settings: Settings, start_service: Any, provider: str
) -> AsyncIterator[str]:
    """The notifier with sign-in at the provider, on a real port; its console's URL. Asked for
    before the browser, so the browser has quit (its connections closed) when this stops."""
    notifier = await start_service(
        NOTIFIER,
        roles=frozenset({"api"}),
        settings_=tuned(settings, notifier={"console_oidc": oidc_settings(provider)}),
    )
    async with served(notifier.runtime) as base:
        yield f"{base}/console"


@pytest.mark.skipif(
    in_chromium.CHROMIUM is None or in_chromium.CHROMEDRIVER is None,
    reason="Debian's chromium and chromium-driver are not installed",
)
async def test_sign_in_with_the_provider_in_chromium(
    served_console: str,
    chromium: Any,  # noqa: F811
) -> None:
    name = await in_chromium.in_browser(sign_in_with_the_provider, chromium, served_console)
    assert name == "Zhao Lei"
