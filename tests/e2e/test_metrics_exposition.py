"""Every process's /metrics passes `promtool check metrics` once it has done real work."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

import pytest
from testkit import placed, publish_event, wait_until

from orderguard.services.inventory.bootstrap import DEFINITION as INVENTORY
from orderguard.services.notifier.bootstrap import DEFINITION as NOTIFIER
from orderguard.shared.settings import Settings


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool not installed (Debian package prometheus)")
    return found


async def test_metrics_pass_promtool_after_the_whole_loop_ran(
    settings: Settings, start_service
) -> None:  # type: ignore[no-untyped-def]
    promtool = _promtool()
    inventory = await start_service(INVENTORY)
    notifier = await start_service(NOTIFIER)
    await inventory.client.put("/stock/SKU-M/main", json={"on_hand": 3, "low_stock_threshold": 5})
    await inventory.client.get("/stock/unknown-sku")  # a 404 gets its own series
    await inventory.wait_assigned()
    await notifier.wait_assigned()
    await publish_event(
        settings, settings.topic_prefix + "orders.events", placed("o-m", "SKU-M", 1)
    )

    async def notified() -> bool:
        return bool((await notifier.client.get("/notifications")).json())

    await wait_until(notified, what="a notification")
    for service in (inventory, notifier):
        exposition = (await service.client.get("/metrics")).text
        for name in (
            "orderguard_http_requests_total",
            "orderguard_events_consumed_total",
            "orderguard_outbox_published_total",
            "orderguard_anomalies_detected_total",
            "orderguard_notifications_total",
            "orderguard_build_info",
        ):
            assert name in exposition, name
        result = await asyncio.to_thread(
            subprocess.run,
            [promtool, "check", "metrics"],
            input=exposition,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert not (result.stdout + result.stderr).strip(), result.stdout + result.stderr
