"""`orderguard up` survives its own database and broker dying (kill -9), as a user would see it.

Real processes: the supervisor, PostgreSQL, Tansu and the five services. After each kill the
supervisor starts what died; the services come back ready on their own and orders placed after
the fault flow through Kafka to inventory as before. Orders placed before a broker restart are
not reserved twice although the outboxes are published again to the new, empty broker.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest
from upkit import consumed_duplicates, running_up, wait_all_ready, wait_while_up

from orderguard.cli.embedded import EmbeddedPostgres

SKU = "SKU-R"
# Two recoveries of the whole system: 45 s alone, 240 s at load 21, near the suite's 300 s
# limit. Its own waits (up to 180 s each) bound every step.
pytestmark = pytest.mark.timeout(900)


def test_up_restarts_a_killed_database_and_broker_and_the_services_recover(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "og"
    with running_up(data_dir) as running:
        up = running.process
        status = wait_all_ready(data_dir, 180, "every service ready", up)
        headers = {"X-API-Key": status["api_key"]}
        order_url = status["services"]["order"]["url"]
        stock_url = f"{status['services']['inventory']['url']}/stock/{SKU}"
        put = httpx.put(f"{stock_url}/main", json={"on_hand": 100}, headers=headers, timeout=10)
        assert put.status_code == 200, put.text

        def reserved() -> int:
            [stock] = httpx.get(stock_url, headers=headers, timeout=5).json()
            return int(stock["reserved"])

        def place_and_wait_reserved(units: int) -> None:
            body = {
                "customer_id": "c-1",
                "phone": "13912345678",
                "shipping_address": {
                    "province": "广东省",
                    "city": "深圳市",
                    "district": "南山区",
                    "street": "科技园 1 号",
                    "recipient": "韩梅梅",
                },
                "lines": [{"sku": SKU, "quantity": 1, "unit_price": "10.00"}],
                "channel": "app",
            }
            placed = httpx.post(f"{order_url}/orders", json=body, headers=headers, timeout=10)
            assert placed.status_code == 201, placed.text
            wait_while_up(
                lambda: reserved() == units,
                90,
                f"{units} unit(s) reserved",
                up,
            )

        place_and_wait_reserved(1)

        # The database: killed, started again by the supervisor; the services recover.
        pgdata = data_dir / "pgdata"
        killed = EmbeddedPostgres(pgdata).pid
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        wait_while_up(
            lambda: (pid := EmbeddedPostgres(pgdata).pid) is not None and pid != killed,
            90,
            "PostgreSQL restarted",
            up,
        )
        status = wait_all_ready(data_dir, 180, "every service ready again", up)
        place_and_wait_reserved(2)

        # The broker: killed, started again empty; topics recreated, outboxes published again.
        broker_pid = status["broker"]["pid"]
        os.kill(broker_pid, signal.SIGKILL)
        wait_all_ready(
            data_dir,
            180,
            "every service ready on a new broker",
            up,
            also=lambda status: bool(status["broker"]["pid"] != broker_pid),
        )
        place_and_wait_reserved(3)
        # Every kept outbox row went out again: the two orders placed before the restart reached
        # inventory a second time, and it dropped them as applied already.
        metrics_url = f"{status['services']['inventory']['url']}/metrics"
        wait_while_up(
            lambda: (
                consumed_duplicates(httpx.get(metrics_url, timeout=5).text, "orders.events") >= 2
            ),
            90,
            "inventory dropping the re-published order.placed events",
            up,
        )
        assert reserved() == 3
    output = running.output
    assert "PostgreSQL died; restarting it" in output, output
    assert "broker died; restarting it" in output, output
    assert up.returncode == 0, output
