"""`orderguard up` survives its own database and broker dying (kill -9), as a user would see it.

Real processes: the supervisor, PostgreSQL, Tansu and the five services. After each kill the
supervisor starts what died; the services come back ready on their own and orders placed after
the fault flow through Kafka to inventory as before. Orders placed before a broker restart are
not reserved twice although the outboxes are published again to the new, empty broker. The same
holds when `up` is stopped and started again on its data dir (its broker is new every time).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from orderflow import order_body
from upkit import Up, consumed_duplicates, running_up, wait_all_ready, wait_while_up

from orderguard.cli.embedded import EmbeddedPostgres
from orderguard.cli.supervisor import autogroup

SKU = "SKU-R"
# Two recoveries of the whole system: 45 s alone, 240 s at load 21, near the suite's 300 s
# limit. Its own waits (up to 180 s each) bound every step.
pytestmark = pytest.mark.timeout(900)


class Shop:
    """The order and inventory APIs of a running `up`, as a user calls them."""

    def __init__(self, status: dict[str, Any], up: subprocess.Popen[str]) -> None:
        self.headers = {"X-API-Key": status["api_key"]}
        self.order_url = status["services"]["order"]["url"]
        self.inventory_metrics_url = f"{status['services']['inventory']['url']}/metrics"
        self.stock_url = f"{status['services']['inventory']['url']}/stock/{SKU}"
        self.up = up

    def stock(self, on_hand: int) -> None:
        put = httpx.put(
            f"{self.stock_url}/main", json={"on_hand": on_hand}, headers=self.headers, timeout=10
        )
        assert put.status_code == 200, put.text

    def reserved(self) -> int:
        [stock] = httpx.get(self.stock_url, headers=self.headers, timeout=5).json()
        return int(stock["reserved"])

    def place(self, orders: int) -> None:
        for _ in range(orders):
            placed = httpx.post(
                f"{self.order_url}/orders",
                json=order_body("c-1", SKU),
                headers=self.headers,
                timeout=10,
            )
            assert placed.status_code == 201, placed.text

    def wait_reserved(self, units: int) -> None:
        wait_while_up(lambda: self.reserved() == units, 90, f"{units} unit(s) reserved", self.up)

    def wait_dropped_as_applied(self, events: int) -> None:
        """Until inventory has dropped `events` order events as applied already (re-published)."""
        wait_while_up(
            lambda: (
                consumed_duplicates(
                    httpx.get(self.inventory_metrics_url, timeout=5).text, "orders.events"
                )
                >= events
            ),
            90,
            "inventory dropping the re-published order events",
            self.up,
        )

    def place_and_wait_reserved(self, units: int) -> None:
        self.place(1)
        self.wait_reserved(units)


def nice_steps_below(pid: int, supervisor: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, pid) - os.getpriority(os.PRIO_PROCESS, supervisor)


def assert_front_door_first(status: dict[str, Any]) -> None:
    """The order service runs as the supervisor does, in a session of its own at the
    supervisor's session's nice; the broker in the supervisor's session; the other services
    10 steps below (`up`'s default), their sessions too. (A session nice below 0 needs
    privileges: the test runs where the supervisor's is not below 0, or as root.)"""
    supervisor = status["supervisor_pid"]
    services = status["services"]
    order, broker = services["order"]["pid"], status["broker"]["pid"]
    assert nice_steps_below(order, supervisor) == nice_steps_below(broker, supervisor) == 0
    assert autogroup(broker) == autogroup(supervisor)
    supervisor_group = autogroup(supervisor)
    for name in ("inventory", "logistics", "aftersales", "notifier"):
        pid = services[name]["pid"]
        assert nice_steps_below(pid, supervisor) == 10, name
        group = autogroup(pid)
        if supervisor_group is not None and group is not None:
            assert group[1] == supervisor_group[1] + 10, (name, group, supervisor_group)
    order_group = autogroup(order)
    if supervisor_group is not None and order_group is not None:
        assert order_group[0] != supervisor_group[0]
        assert order_group[1] == supervisor_group[1]


@contextlib.contextmanager
def shop_of_up(data_dir: Path, ready: str) -> Iterator[tuple[Up, Shop]]:
    """`up` on `data_dir`, once every service is ready, and its shop."""
    with running_up(data_dir) as running:
        status = wait_all_ready(data_dir, 180, ready, running.process)
        yield running, Shop(status, running.process)


def test_up_restarts_a_killed_database_and_broker_and_the_services_recover(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "og"
    with shop_of_up(data_dir, "every service ready") as (running, shop):
        up = running.process
        assert_front_door_first(wait_all_ready(data_dir, 10, "status", up))
        shop.stock(100)
        shop.place_and_wait_reserved(1)

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
        shop.place_and_wait_reserved(2)

        # The broker: killed, started again empty; topics recreated, outboxes published again.
        broker_pid = status["broker"]["pid"]
        os.kill(broker_pid, signal.SIGKILL)
        status = wait_all_ready(
            data_dir,
            180,
            "every service ready on a new broker",
            up,
            also=lambda status: bool(status["broker"]["pid"] != broker_pid),
        )
        # Started again, the broker and the services keep their places behind the front door.
        assert_front_door_first(status)
        shop.place_and_wait_reserved(3)
        # Every kept outbox row went out again: the two orders placed before the restart reached
        # inventory a second time, and it dropped them as applied already.
        shop.wait_dropped_as_applied(2)
        assert shop.reserved() == 3
    output = running.output
    assert "PostgreSQL died; restarting it" in output, output
    assert "broker died; restarting it" in output, output
    assert up.returncode == 0, output


def test_up_started_again_on_its_data_dir_applies_what_is_placed_after(tmp_path: Path) -> None:
    """Stopped and started again, `up` has a new, empty broker but the database of the last
    run: the consumers must not skip the new broker's records below the offsets the last run's
    broker had reached."""
    data_dir = tmp_path / "og"
    with shop_of_up(data_dir, "every service ready") as (running, shop):
        shop.stock(1000)
        # Enough orders that every partition of orders.events holds some (12 partitions).
        shop.place(100)
        shop.wait_reserved(100)
    assert running.process.returncode == 0, running.output
    with shop_of_up(data_dir, "every service ready again") as (running, shop):
        shop.place(5)
        shop.wait_reserved(105)
        # The last run's order.placed events went out again and were dropped as applied.
        shop.wait_dropped_as_applied(100)
        assert shop.reserved() == 105
    assert "outbox row(s) kept from the last run to publish again" in running.output
