"""The console in a real headless Chromium (Debian's chromium + chromium-driver, Selenium),
against the order service and the notifier served over real HTTP ports, on the real embedded
broker and PostgreSQL: an operator sees only their team's queue, claims and resolves an item
and the timeline names them; another team's operator gets 403 from the server; an order comes
back from the recycle bin; the analytics charts are drawn; zh-CN and en switch; the cases,
shipments, routing (admins only) and archived-bin pages open, one of them by the keyboard.

Screenshots go to test-artifacts/console/ (gitignored)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from orderflow import order_body
from testkit import (
    CONSOLE_PASSWORD,
    add_people,
    console_calls_in_process,
    route_anomaly,
    served,
    tuned,
    wait_until,
    work_items_of,
)

from orderguard.services.aftersales.bootstrap import DEFINITION as AFTERSALES
from orderguard.services.logistics.bootstrap import DEFINITION as LOGISTICS
from orderguard.services.notifier.bootstrap import DEFINITION as NOTIFIER
from orderguard.services.notifier.console import people
from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared.settings import Settings

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Debian's chromium and chromium-driver are not installed"
    " (apt-get install -y chromium chromium-driver; .ci/run installs them)",
)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
WAIT_S = 20
T = TypeVar("T")


@pytest.fixture
def chromium() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
async def system(settings: Settings, start_service: Any) -> AsyncIterator[dict[str, Any]]:
    """Order and notifier on real ports (aftersales and logistics reached in-process); two
    operators and an admin; one item per team; an order in the bin."""
    order = await start_service(ORDER, roles=frozenset({"api"}))
    async with served(order.runtime) as order_url:
        notifier = await start_service(
            NOTIFIER, settings_=tuned(settings, notifier={"console_order_url": order_url})
        )
        for other in (AFTERSALES, LOGISTICS):
            console_calls_in_process(notifier, await start_service(other, roles=frozenset({"api"})))
        async with served(notifier.runtime) as notifier_url:
            await notifier.wait_assigned()
            await add_people(
                notifier.runtime,
                ("wang", "Wang Wei", {"warehouse": "operator"}),
                ("li", "Li Na", {"logistics": "operator"}),
            )
            async with notifier.runtime.pool.acquire() as conn:
                await people.add(conn, "root", "Root", CONSOLE_PASSWORD, is_admin=True)
            await route_anomaly(settings, "fp-w", "stock.low", "warehouse", "P2")
            await route_anomaly(settings, "fp-l", "shipment.stalled", "logistics", "P2")

            async def item_of(team: str) -> str | None:
                found = await work_items_of(notifier.client, team=team)
                return found[0]["id"] if found else None

            placed = (await order.client.post("/orders", json=order_body())).json()["order_id"]
            moved = await order.client.post(
                f"/orders/{placed}/recycle-bin",
                json={"category": "held", "reason": "address wrong"},
            )
            assert moved.status_code == 201, moved.text
            yield {
                "base": f"{notifier_url}/console",
                "warehouse_item": await wait_until(lambda: item_of("warehouse"), what="item"),
                "logistics_item": await wait_until(lambda: item_of("logistics"), what="item"),
                "binned_order": placed,
                "order": order,
            }


async def in_browser(call: Callable[..., T], *args: Any) -> T:
    # Selenium blocks; the servers run on this event loop, so the browser waits in a thread.
    return await asyncio.to_thread(call, *args)


def sign_in(driver: Any, base: str, login: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(f"{base}/sign-in")
    driver.find_element(By.ID, "login").send_keys(login)
    driver.find_element(By.ID, "password").send_keys(CONSOLE_PASSWORD)
    driver.find_element(By.ID, "sign-in").click()
    wait_for(driver, lambda d: d.find_elements(By.ID, "me"))


def wait_for(driver: Any, condition: Callable[[Any], Any]) -> Any:
    """Until `condition` holds. An element found while a form's answer replaces the page goes
    stale before it is read: look again rather than fail."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(
        driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,)
    ).until(condition)


def shot(driver: Any, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def work_the_queue(driver: Any, base: str, mine: str, theirs: str) -> str:
    from selenium.webdriver.common.by import By

    sign_in(driver, base, "wang")
    queue = driver.find_element(By.ID, "queue").get_attribute("innerHTML")
    assert mine in queue and theirs not in queue
    shot(driver, "1-queue-warehouse-operator")
    driver.find_element(By.CSS_SELECTOR, f'a[href$="/work-items/{mine}"]').click()
    wait_for(driver, lambda d: d.find_elements(By.ID, "claim")).pop().click()
    # The claimed page, not the one before it (which has the reason field too and goes stale).
    wait_for(driver, lambda d: d.find_element(By.ID, "item-state").text == "claimed")
    wait_for(driver, lambda d: d.find_elements(By.ID, "resolve-reason")).pop().send_keys(
        "restocked"
    )
    driver.find_element(By.ID, "resolve").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "item-state").text == "resolved")
    timeline = driver.find_element(By.ID, "timeline").text
    shot(driver, "2-work-item-resolved")
    return str(timeline)


def other_team(driver: Any, base: str, item: str) -> tuple[str, dict[str, str]]:
    from selenium.webdriver.common.by import By

    sign_in(driver, base, "li")
    driver.get(f"{base}/work-items/{item}")
    message = driver.find_element(By.ID, "error-message").text
    shot(driver, "3-other-team-refused")
    return str(message), {c["name"]: c["value"] for c in driver.get_cookies()}


def restore_from_bin(driver: Any, base: str, order_id: str) -> str:
    from selenium.webdriver.common.by import By

    sign_in(driver, base, "wang")
    driver.get(f"{base}/recycle-bin")
    driver.find_element(By.ID, f"restore-{order_id}").click()
    restored = wait_for(driver, lambda d: d.find_elements(By.ID, "restored")).pop().text
    shot(driver, "4-recycle-bin-restored")
    return str(restored)


# How many pixels of a canvas are painted (not fully transparent).
PAINTED = """
const c = document.getElementById(arguments[0]);
const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let n = 0; for (let i = 3; i < data.length; i += 4) { if (data[i] > 0) n++; }
return n;
"""


def analytics_in_two_languages(driver: Any, base: str) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/analytics")
    wait_for(driver, lambda d: d.execute_script(PAINTED, "per-rule") > 0)
    painted = {c: driver.execute_script(PAINTED, c) for c in ("per-rule", "per-team", "bin-pareto")}
    shot(driver, "5-analytics-en")
    english = driver.find_element(By.TAG_NAME, "h1").text
    driver.find_element(By.ID, "lang-zh-CN").click()
    wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN")
    chinese = driver.find_element(By.TAG_NAME, "h1").text
    shot(driver, "6-analytics-zh-CN")
    driver.find_element(By.ID, "lang-en").click()
    wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en")
    return {"painted": painted, "en": english, "zh": chinese}


def new_pages(driver: Any, base: str) -> dict[str, Any]:
    """Cases, shipments and (as an admin) routing open, reached by the keyboard from the menu;
    an operator's routing request is refused by the server."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    seen: dict[str, Any] = {}
    sign_in(driver, base, "li")
    driver.get(f"{base}/cases")
    seen["cases"] = driver.find_element(By.ID, "cases").text
    shot(driver, "7-cases")
    # The menu by keyboard: focus the shipments link and press Enter.
    link = driver.find_element(By.CSS_SELECTOR, 'nav[aria-label="main"] a[href$="/shipments"]')
    link.send_keys(Keys.ENTER)
    wait_for(driver, lambda d: d.find_elements(By.ID, "shipment-lists"))
    seen["shipments"] = driver.find_element(By.ID, "shipments").text
    shot(driver, "8-shipments")
    driver.get(f"{base}/routing")
    seen["routing_refused"] = driver.find_element(By.ID, "error-message").text
    sign_in(driver, base, "root")
    driver.get(f"{base}/routing")
    seen["tree"] = driver.find_element(By.ID, "routing-tree").text
    shot(driver, "9-routing")
    driver.get(f"{base}/recycle-bin")
    driver.find_element(By.ID, "bin-view-archived").click()
    wait_for(driver, lambda d: "state=archived" in d.current_url)
    shot(driver, "10-recycle-bin-archived")
    return seen


async def test_the_console_in_chromium(system: dict[str, Any], chromium: Any) -> None:
    base = system["base"]
    mine, theirs = system["warehouse_item"], system["logistics_item"]

    timeline = await in_browser(work_the_queue, chromium, base, mine, theirs)
    assert "claimed Wang Wei" in timeline and "resolved Wang Wei" in timeline, timeline

    message, cookies = await in_browser(other_team, chromium, base, mine)
    assert "not in" in message
    # The refusal is the server's: Li's own session cookie gets 403 for the page and the action.
    session = {"Cookie": f"__Host-og_session={cookies['__Host-og_session']}"}
    async with httpx.AsyncClient(base_url=base, headers=session) as li:
        assert (await li.get(f"/work-items/{mine}")).status_code == 403
        assert (await li.get("/", params={"team": "warehouse"})).status_code == 403

    order_id = system["binned_order"]
    restored = await in_browser(restore_from_bin, chromium, base, order_id)
    assert restored.endswith("1"), restored
    detail = (await system["order"].client.get(f"/orders/{order_id}")).json()
    actor = detail["timeline"][-1]["actor"]
    assert (actor["kind"], actor["id"]) == ("person", "wang"), actor

    seen = await in_browser(analytics_in_two_languages, chromium, base)
    assert all(n > 0 for n in seen["painted"].values()), seen["painted"]
    assert (seen["en"], seen["zh"]) == ("Analytics", "分析")

    pages = await in_browser(new_pages, chromium, base)
    assert "No cases match." in pages["cases"], pages
    assert "No shipments in this list." in pages["shipments"], pages
    assert "Only admins" in pages["routing_refused"], pages
    assert "warehouse-stock" in pages["tree"], pages
