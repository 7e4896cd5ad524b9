"""Chaos: load through the public doors while service processes are killed with SIGKILL.

`orderguard up` runs the system (its supervisor restarts what dies); two extra worker replicas
of inventory (whose stock.low detector and reservation consumer share the group inventory.worker with the
inventory process) are killed too, so a rebalance happens mid-batch. Customers place orders
(with an Idempotency-Key, retried until answered), cancel some, and a payment provider pays
others over POST /events (retried with the same event). Afterwards the invariants are checked
in the services' own tables:

- no order lost or doubled: one order per key that was answered, no other order;
- reserved stock equals the held reservation lines, per SKU;
- each cancellation released once (one `released` ledger movement per line);
- each payment applied once (one `paid` on the timeline);
- no notification or live work item doubled;
- each stock.low episode fired once (one fingerprint per low SKU).

`python tests/chaos.py --duration 600` (`make chaos`) prints the figures; tests/fault/test_chaos.py
runs a short version.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg

from orderguard.cli.embedded import free_port
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.payments import PaymentSucceeded

LOW_SKUS = [f"LOW-{n}" for n in range(3)]  # on hand 30, threshold 10: 8 orders of 3 cross it once
LOW_ORDERS_PER_SKU = 8
PLAIN_SKUS = [f"CH-{n}" for n in range(4)]
ADDRESS = {
    "province": "广东省",
    "city": "深圳市",
    "district": "南山区",
    "street": "科技园 1 号",
    "recipient": "韩梅梅",
}


@dataclass
class Figures:
    orders: int = 0
    cancelled: int = 0
    paid: int = 0
    kills: list[str] = field(default_factory=list)
    retries: int = 0
    answered_5xx: int = 0
    violations: list[str] = field(default_factory=list)


@dataclass
class Placed:
    order_id: str
    sku: str
    quantity: int
    cancelled: bool = False
    paid: bool = False


class Chaos:
    def __init__(self, data_dir: Path, duration_s: float, seed: int, say: Any = print) -> None:
        self.data_dir = data_dir
        self.duration_s = duration_s
        self.rnd = random.Random(seed)
        self.say = say
        self.figures = Figures()
        self.placed: list[Placed] = []
        self.up: subprocess.Popen[bytes] | None = None
        self.replicas: list[subprocess.Popen[bytes] | None] = [None, None]
        self.status: dict[str, Any] = {}

    # -- the system ------------------------------------------------------------------------

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.up = subprocess.Popen(
            [sys.executable, "-m", "orderguard.cli", "up", "--data-dir", str(self.data_dir)],
            stdout=(self.data_dir / "up.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.status = self._wait_ready(240)
        for index in range(len(self.replicas)):
            self._start_replica(index)

    def stop(self) -> None:
        for replica in self.replicas:
            if replica and replica.poll() is None:
                replica.kill()
                replica.wait()
        if self.up and self.up.poll() is None:
            self.up.send_signal(signal.SIGINT)
            try:
                self.up.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.up.kill()
                self.up.wait()

    def _read_status(self) -> dict[str, Any] | None:
        path = self.data_dir / "status.json"
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            return None

    def _ready(self, url: str) -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait_ready(self, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.up is not None and self.up.poll() is None, "orderguard up exited"
            status = self._read_status()
            if status and all(self._ready(s["url"]) for s in status["services"].values()):
                return status
            time.sleep(0.5)
        raise TimeoutError(f"services not ready after {timeout_s}s")

    def _start_replica(self, index: int) -> None:
        env = {
            **os.environ,
            "ORDERGUARD_DATABASE_URL": self.status["database"]["url"],
            "ORDERGUARD_KAFKA_BOOTSTRAP": self.status["broker"]["bootstrap"],
            "ORDERGUARD_KAFKA_EMBEDDED_COMPAT": "true",
            "ORDERGUARD_HTTP_HOST": "127.0.0.1",
            "ORDERGUARD_HTTP_PORT": str(free_port()),
        }
        self.replicas[index] = subprocess.Popen(
            [sys.executable, "-m", "orderguard.cli", "worker", "inventory"],
            env=env,
            stdout=(self.data_dir / f"inventory-worker-{index}.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    # -- load --------------------------------------------------------------------------------

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.status["api_key"]}

    def url(self, service: str) -> str:
        return str(self.status["services"][service]["url"])

    async def _call(
        self, client: httpx.AsyncClient, method: str, url: str, ok: set[int], **kwargs: Any
    ) -> httpx.Response:
        """Call until answered with one of `ok` (a killed service is restarted meanwhile)."""
        deadline = time.monotonic() + 180
        while True:
            try:
                response = await client.request(method, url, timeout=10, **kwargs)
                if response.status_code in ok:
                    return response
                if response.status_code >= 500:
                    self.figures.answered_5xx += 1
                elif response.status_code not in {409, 503}:
                    raise AssertionError(f"{method} {url}: {response.status_code} {response.text}")
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{method} {url} not answered in 180s")
            self.figures.retries += 1
            await asyncio.sleep(0.3)

    async def setup_stock(self, client: httpx.AsyncClient) -> None:
        for sku in LOW_SKUS:
            await self._call(
                client,
                "PUT",
                f"{self.url('inventory')}/stock/{sku}/main",
                {200},
                json={"on_hand": 30, "low_stock_threshold": 10},
                headers=self.headers,
            )
        for sku in PLAIN_SKUS:
            await self._call(
                client,
                "PUT",
                f"{self.url('inventory')}/stock/{sku}/main",
                {200},
                json={"on_hand": 100_000},
                headers=self.headers,
            )

    async def place(self, client: httpx.AsyncClient, sku: str, quantity: int) -> Placed:
        body = {
            "customer_id": f"cust-{self.rnd.randrange(10**9)}",
            "phone": "13912345678",
            "shipping_address": ADDRESS,
            "lines": [{"sku": sku, "quantity": quantity, "unit_price": "10.00"}],
            "channel": "app",
        }
        key = str(uuid.uuid4())
        response = await self._call(
            client,
            "POST",
            f"{self.url('order')}/orders",
            {200, 201},
            json=body,
            headers={**self.headers, "Idempotency-Key": key},
        )
        placed = Placed(response.json()["order_id"], sku, quantity)
        self.placed.append(placed)
        self.figures.orders += 1
        return placed

    async def cancel(self, client: httpx.AsyncClient, placed: Placed) -> None:
        await self._call(
            client,
            "POST",
            f"{self.url('order')}/orders/{placed.order_id}/cancel",
            {200, 409},
            json={"reason": "customer_request"},
            headers=self.headers,
        )
        placed.cancelled = True
        self.figures.cancelled += 1

    async def pay(self, client: httpx.AsyncClient, placed: Placed) -> None:
        data = PaymentSucceeded(
            order_id=placed.order_id,
            payment_id=f"pay-{placed.order_id}",
            amount=Decimal(10) * placed.quantity,
            provider="alipay",
            occurred_at=datetime.now(UTC),
        )
        envelope = Envelope(
            type="payment.succeeded.v1",
            source="/payments/alipay",
            subject=placed.order_id,
            data=data.model_dump(mode="json"),
        )
        await self._call(
            client,
            "POST",
            f"{self.url('order')}/events",
            {200, 202},
            content=envelope.to_json(),
            headers={**self.headers, "content-type": "application/cloudevents+json"},
        )
        placed.paid = True
        self.figures.paid += 1

    async def customer(
        self, client: httpx.AsyncClient, stop: asyncio.Event, low: list[str]
    ) -> None:
        while not stop.is_set():
            if low:
                await self.place(client, low.pop(), 3)  # never cancelled: stock only goes down
                continue
            placed = await self.place(client, self.rnd.choice(PLAIN_SKUS), self.rnd.randint(1, 3))
            roll = self.rnd.random()
            if roll < 0.3:
                await self.cancel(client, placed)
            elif roll < 0.8:
                await self.pay(client, placed)

    async def killer(self, stop: asyncio.Event) -> None:
        # Every process in turn, in a random order each round: a short run kills each of them.
        victims = [*self.status["services"], "inventory-worker-0", "inventory-worker-1"]
        timing = random.Random(self.rnd.random())
        queue: list[str] = []
        while not stop.is_set():
            await asyncio.sleep(timing.uniform(2, 6))
            if stop.is_set():
                return
            if not queue:
                queue = timing.sample(victims, len(victims))
            victim = queue.pop()
            if victim.startswith("inventory-worker-"):
                index = int(victim[-1])
                replica = self.replicas[index]
                if replica and replica.poll() is None:
                    replica.kill()
                    replica.wait()
                    self._start_replica(index)
            else:
                status = self._read_status() or self.status
                pid = status["services"][victim].get("pid")
                if not pid:
                    continue
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
            self.figures.kills.append(victim)

    async def load(self) -> None:
        stop = asyncio.Event()
        low = [sku for sku in LOW_SKUS for _ in range(LOW_ORDERS_PER_SKU)]
        self.rnd.shuffle(low)
        async with httpx.AsyncClient() as client:
            await self.setup_stock(client)
            customers = [asyncio.create_task(self.customer(client, stop, low)) for _ in range(4)]
            killer = asyncio.create_task(self.killer(stop))
            await asyncio.sleep(self.duration_s)
            stop.set()
            await asyncio.gather(*customers, killer)

    # -- invariants --------------------------------------------------------------------------

    def violations(self) -> list[str]:
        found: list[str] = []
        placed = {p.order_id: p for p in self.placed}
        with psycopg.connect(self.status["database"]["url"]) as db:

            def rows(sql: str, *args: Any) -> list[tuple[Any, ...]]:
                return db.execute(sql, args).fetchall()

            orders = {r[0] for r in rows("SELECT order_id FROM orders.orders")}
            if orders != set(placed):
                found.append(
                    f"orders: {len(set(placed) - orders)} lost, {len(orders - set(placed))} unknown"
                )
            for sku, reserved, held in rows(
                "SELECT s.sku, s.reserved, COALESCE(sum(r.quantity) FILTER (WHERE r.state = 'held'), 0)"
                " FROM inventory.stock s LEFT JOIN inventory.reservations r USING (sku, warehouse)"
                " GROUP BY s.sku, s.reserved"
            ):
                if reserved != held:
                    found.append(f"stock {sku}: reserved {reserved} but held lines {held}")
            reservations = {
                order_id: (count, states)
                for order_id, count, states in rows(
                    "SELECT order_id, count(*), array_agg(DISTINCT state) FROM inventory.reservations"
                    " GROUP BY order_id"
                )
            }
            releases = dict(
                rows(
                    "SELECT order_id, count(*) FROM inventory.stock_ledger"
                    " WHERE movement = 'released' GROUP BY order_id"
                )
            )
            paid = dict(
                rows(
                    "SELECT order_id, count(*) FROM orders.order_timeline WHERE what = 'paid'"
                    " GROUP BY order_id"
                )
            )
            for order_id, p in placed.items():
                if reservations.get(order_id, (0, []))[0] != 1:
                    found.append(
                        f"order {order_id}: {reservations.get(order_id)} reservation lines"
                    )
                if p.cancelled and (
                    releases.get(order_id) != 1
                    or reservations.get(order_id, (0, []))[1] != ["released"]
                ):
                    found.append(f"cancelled {order_id}: released {releases.get(order_id)} times")
                if not p.cancelled and releases.get(order_id):
                    found.append(f"order {order_id} released without a cancellation")
                if p.paid and paid.get(order_id) != 1:
                    found.append(f"paid {order_id}: paid {paid.get(order_id)} times")
            for what, sql in {
                "notification": "SELECT fingerprint, queue, channel FROM notifier.notifications"
                " GROUP BY 1, 2, 3 HAVING count(*) > 1",
                "delivery": "SELECT request_id, channel FROM notifier.deliveries"
                " GROUP BY 1, 2 HAVING count(*) > 1",
                "live work item": "SELECT team, group_key FROM notifier.work_items"
                " WHERE state IN ('open', 'claimed') GROUP BY 1, 2 HAVING count(*) > 1",
            }.items():
                for row in rows(sql):
                    found.append(f"{what} doubled: {row}")
            episodes = dict(
                rows(
                    "SELECT labels->>'sku', count(*) FROM notifier.anomaly_states"
                    " WHERE rule = 'stock.low' GROUP BY 1"
                )
            )
            for sku in LOW_SKUS:
                if episodes.get(sku) != 1:
                    found.append(f"stock.low {sku}: {episodes.get(sku)} episodes")
        return found

    def settle(self, timeout_s: float) -> list[str]:
        """Wait until the services are ready and the invariants hold (or the time is up)."""
        self.status = self._wait_ready(timeout_s)
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.violations()
            if not found or time.monotonic() > deadline:
                return found
            time.sleep(1.0)


def run(data_dir: Path, duration_s: float, seed: int, settle_s: float = 180) -> Figures:
    chaos = Chaos(data_dir, duration_s, seed)
    started = time.monotonic()
    try:
        chaos.start()
        asyncio.run(chaos.load())
        chaos.figures.violations = chaos.settle(settle_s)
    finally:
        chaos.stop()
    chaos.say(
        f"chaos: {duration_s:.0f}s of load, seed {seed}, {time.monotonic() - started:.0f}s in all;"
        f" load average {os.getloadavg()[0]:.2f}\n"
        f"  orders {chaos.figures.orders}, cancelled {chaos.figures.cancelled},"
        f" paid {chaos.figures.paid}, client retries {chaos.figures.retries},"
        f" 5xx answers {chaos.figures.answered_5xx}\n"
        f"  SIGKILLs {len(chaos.figures.kills)}: {', '.join(chaos.figures.kills)}\n"
        f"  invariant violations: {len(chaos.figures.violations)}"
        + "".join(f"\n    {v}" for v in chaos.figures.violations[:50])
    )
    return chaos.figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="orderguard-chaos-")) / "og"
    figures = run(data_dir, args.duration, args.seed)
    return 1 if figures.violations else 0


if __name__ == "__main__":
    sys.exit(main())
