"""The faust driver and the engine run the same pure rule on the same recorded scenario and
raise the same anomalies (same fingerprints), both equal to the rule applied in order here.

The faust worker runs as a user would start it: `orderguard worker inventory --engine faust`,
a real process on the embedded broker, stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter

import httpx
from aiokafka import AIOKafkaProducer
from testkit import events_of_type, stock_event, wait_until

from orderguard.embedded import free_port
from orderguard.services.inventory.bootstrap import DEFINITION as INVENTORY
from orderguard.services.inventory.rules import LowStock
from orderguard.shared.detector_config import load_for
from orderguard.shared.settings import Settings

# Per SKU x warehouse, available stock over time (threshold 10): dips, recoveries, dips again.
LEVELS = [12, 8, 3, 15, 4, 2, 30, 9]
SKUS = ["SKU-A", "SKU-B", "SKU-C"]
WAREHOUSES = ["main", "north"]


def recorded_scenario() -> list:  # type: ignore[type-arg]
    events = []
    n = 0
    for level in LEVELS:
        for sku in SKUS:
            for warehouse in WAREHOUSES:
                events.append(stock_event(level, 10, sku=sku, warehouse=warehouse, n=n))
                n += 1
    return events


def expected_fingerprints(settings: Settings) -> Counter[str]:
    rule = LowStock(load_for(settings).rule(LowStock.name))
    states: dict[str, dict] = {}  # type: ignore[type-arg]
    fired: Counter[str] = Counter()
    for event in recorded_scenario():
        key = rule.key(event)
        assert key is not None
        states[key], anomalies = rule.apply(
            states.get(key, rule.initial_state()), event, event.envelope.time
        )
        fired.update(anomaly.fingerprint for anomaly in anomalies)
    return fired


async def test_faust_driver_and_engine_raise_the_same_anomalies(
    settings: Settings,
    start_service,  # type: ignore[no-untyped-def]
) -> None:
    expected = expected_fingerprints(settings)
    assert sum(expected.values()) == 18  # three episodes for each of the 6 SKU x warehouse pairs

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for event in recorded_scenario():
            envelope = event.envelope
            await producer.send_and_wait(
                settings.topic_prefix + "inventory.events",
                envelope.to_json(),
                key=envelope.subject.encode(),
                headers=envelope.kafka_headers(),
            )
    finally:
        await producer.stop()

    port = free_port()
    env = {
        **os.environ,
        "ORDERGUARD_DATABASE_URL": settings.database_url,
        "ORDERGUARD_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ORDERGUARD_KAFKA_EMBEDDED_COMPAT": "true",
        "ORDERGUARD_TOPIC_PREFIX": settings.topic_prefix,
        "ORDERGUARD_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "ORDERGUARD_HTTP_PORT": str(port),
        "ORDERGUARD_LOG_FORMAT": "json",
    }
    faust_worker = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "orderguard", "worker", "inventory", "--engine", "faust"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await start_service(INVENTORY, roles=frozenset({"workers"}))
        anomalies_topic = settings.topic_prefix + "anomalies.detected"

        async def raised_by_both() -> tuple[Counter[str], Counter[str]] | None:
            engine: Counter[str] = Counter()
            faust: Counter[str] = Counter()
            for envelope in await events_of_type(settings, anomalies_topic, "anomaly.detected.v1"):
                by = faust if envelope.source.endswith("/faust") else engine
                by[envelope.data["fingerprint"]] += 1
            done = sum(engine.values()) >= 18 and sum(faust.values()) >= 18
            return (engine, faust) if done else None

        engine, faust = await wait_until(
            raised_by_both, timeout=90, interval=0.5, what="18 anomalies from each driver"
        )
        assert engine == expected
        assert faust == expected

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            exposition = (await client.get("/metrics")).text
        assert (
            'orderguard_anomalies_detected_total{rule="stock.low",severity="P3"} 18.0' in exposition
        )
    finally:
        faust_worker.send_signal(signal.SIGTERM)
        try:
            output, _ = await asyncio.wait_for(faust_worker.communicate(), timeout=30)
        except TimeoutError:
            faust_worker.kill()
            output, _ = await faust_worker.communicate()
    assert faust_worker.returncode == 0, output.decode(errors="replace")[-3000:]
