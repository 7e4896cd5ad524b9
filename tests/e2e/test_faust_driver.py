"""Three drivers of the same pure rules on one recorded scenario raise the same anomalies (same
fingerprints): the engine, the faust driver and `orderguard backtest`'s replay, all equal to
the rule applied in order here.

The faust worker runs as a user would start it: `orderguard worker inventory --engine faust`,
a real process on the embedded broker, stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from testkit import events_of_type, stock_event, wait_until

from orderguard.cli.embedded import free_port
from orderguard.cli.services_registry import STREAM_RULES, rule_catalogue
from orderguard.services.inventory.bootstrap import DEFINITION as INVENTORY
from orderguard.services.inventory.rules import LowStock
from orderguard.services.logistics.bootstrap import DEFINITION as LOGISTICS
from orderguard.services.notifier.backtest import (
    decode,
    read_topic_range,
    run_backtest,
)
from orderguard.services.notifier.routing import load_routing
from orderguard.shared.detection.config import load_for
from orderguard.shared.envelope import Envelope
from orderguard.shared.events.logistics import ShipmentCreated, ShipmentScanned
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


def expected_anomalies(settings: Settings) -> Counter[tuple[str, str]]:
    rule = LowStock(load_for(settings, rule_catalogue()).rule(LowStock.name))
    states: dict[str, dict] = {}  # type: ignore[type-arg]
    fired: Counter[tuple[str, str]] = Counter()
    for event in recorded_scenario():
        key = rule.key(event)
        assert key is not None
        states[key], anomalies = rule.apply(
            states.get(key, rule.initial_state()), event, event.envelope.time
        )
        fired.update((anomaly.fingerprint, anomaly.status) for anomaly in anomalies)
    return fired


async def publish_all(settings: Settings, topic: str, envelopes: list[Envelope]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send_and_wait(
                topic,
                envelope.to_json(),
                key=envelope.subject.encode(),
                headers=envelope.kafka_headers(),
            )
    finally:
        await producer.stop()


async def start_faust_worker(
    settings: Settings, service: str, **extra_env: str
) -> asyncio.subprocess.Process:
    """`orderguard worker <service> --engine faust` as a user starts it, on the test's broker."""
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
        **extra_env,
    }
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "orderguard.cli", "worker", service, "--engine", "faust"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    process.ops_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return process


async def stop_faust_worker(process: asyncio.subprocess.Process) -> str:
    """SIGTERM, as Kubernetes stops it; its output for the assertion message."""
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
    return output.decode(errors="replace")


async def test_faust_driver_and_engine_raise_the_same_anomalies(
    settings: Settings,
    start_service,  # type: ignore[no-untyped-def]
) -> None:
    expected = expected_anomalies(settings)
    # Per SKU x warehouse pair: three dips (firing) and two recoveries (resolved, same fingerprint).
    assert Counter(status for _, status in expected.elements()) == {"firing": 18, "resolved": 12}

    await publish_all(
        settings,
        settings.topic_prefix + "inventory.events",
        [event.envelope for event in recorded_scenario()],
    )
    faust_worker = await start_faust_worker(settings, "inventory")
    try:
        await start_service(INVENTORY, roles=frozenset({"workers"}))
        anomalies_topic = settings.topic_prefix + "anomalies.detected"

        async def raised_by_both() -> tuple[Counter[tuple[str, str]], ...] | None:
            engine: Counter[tuple[str, str]] = Counter()
            faust: Counter[tuple[str, str]] = Counter()
            for envelope in await events_of_type(settings, anomalies_topic, "anomaly.detected.v1"):
                by = faust if envelope.source.endswith("/faust") else engine
                by[(envelope.data["fingerprint"], envelope.data["status"])] += 1
            done = sum(engine.values()) >= 30 and sum(faust.values()) >= 30
            return (engine, faust) if done else None

        engine, faust = await wait_until(
            raised_by_both, timeout=90, interval=0.5, what="30 anomalies from each driver"
        )
        assert engine == expected
        assert faust == expected
        # The third driver: `orderguard backtest`'s replay core over the same topic range.
        assert await backtested(settings, "inventory.events") == expected

        async with httpx.AsyncClient(base_url=faust_worker.ops_url) as client:  # type: ignore[attr-defined]
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            exposition = (await client.get("/metrics")).text
        counted = sum(
            sample.value
            for family in text_string_to_metric_families(exposition)
            for sample in family.samples
            if sample.name == "orderguard_anomalies_detected_total"
            and sample.labels["rule"] == "stock.low"
        )
        assert counted == 30
    finally:
        output = await stop_faust_worker(faust_worker)
    assert faust_worker.returncode == 0, output[-3000:]


def shipment_events(shipment: str, scanned_at: datetime, n: int) -> list[Envelope]:
    """A shipment created and picked up, as the logistics service publishes them."""
    common = {
        "shipment_id": shipment,
        "order_id": f"ord-{shipment}",
        "carrier": "sf-express",
        "tracking_number": f"SF{n:013d}",
    }
    created = ShipmentCreated(
        **common,
        warehouse="main",
        promised_delivery_by=scanned_at + timedelta(days=3),
        created_at=scanned_at,
    )
    return [
        Envelope(
            type="shipment.created.v1",
            source="/test",
            subject=shipment,
            time=scanned_at,
            data=created.model_dump(mode="json"),
        ),
        scan(shipment, common, f"{shipment}-1", "picked_up", scanned_at),
    ]


def scan(
    shipment: str, common: dict[str, str], scan_id: str, status: str, at: datetime
) -> Envelope:
    data = ShipmentScanned(
        **common,
        scan_id=scan_id,
        scan_status=status,  # type: ignore[arg-type]
        scanned_at=at,
        shipment_status=status,  # type: ignore[arg-type]
        status_changed=True,
    )
    return Envelope(
        type="shipment.scanned.v1",
        source="/test",
        subject=shipment,
        time=at,
        data=data.model_dump(mode="json"),
    )


async def test_faust_driver_fires_deadlines_while_silent_like_the_engine(
    settings: Settings,
    start_service,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """shipment.stalled is a timed rule: both drivers fire it from their deadline index while
    nothing arrives (idle clocks), and a late scan resolves it with the same fingerprint."""
    detectors = tmp_path / "detectors.yaml"
    detectors.write_text("rules:\n  shipment.stalled:\n    params: {silence_hours: 0.000556}\n")
    settings = settings.model_copy(
        update={
            "detectors_file": str(detectors),
            "detector_idle_after_s": 0.3,
            "detector_allowed_lateness_s": 0.0,
        }
    )
    topic = settings.topic_prefix + "logistics.events"
    now = datetime.now(UTC)
    shipments = [f"shp-{n}" for n in range(4)]
    await publish_all(
        settings, topic, [e for n, s in enumerate(shipments) for e in shipment_events(s, now, n)]
    )
    faust_worker = await start_faust_worker(
        settings,
        "logistics",
        ORDERGUARD_DETECTORS_FILE=str(detectors),
        ORDERGUARD_DETECTOR_IDLE_AFTER_S="0.3",
        ORDERGUARD_DETECTOR_ALLOWED_LATENESS_S="0",
    )
    try:
        await start_service(LOGISTICS, roles=frozenset({"workers"}), settings_=settings)

        def by_driver(
            rule: str,
        ) -> Callable[[], Awaitable[tuple[Counter[str], Counter[str]] | None]]:
            async def raised() -> tuple[Counter[str], Counter[str]] | None:
                engine, faust = await anomalies_by_driver(settings, rule)
                done = sum(engine.values()) >= 4 and sum(faust.values()) >= 4
                return (engine, faust) if done else None

            return raised

        engine, faust = await wait_until(
            by_driver("shipment.stalled"), timeout=60, interval=0.5, what="4 stalls from each"
        )
        assert engine == faust and len(engine) == 4 and set(engine.values()) == {1}

        common = {
            "shipment_id": "shp-0",
            "order_id": "ord-shp-0",
            "carrier": "sf-express",
            "tracking_number": f"SF{0:013d}",
        }
        late = scan("shp-0", common, "shp-0-2", "in_transit", datetime.now(UTC))
        await publish_all(settings, topic, [late])
        engine_resumed, faust_resumed = await wait_until(
            by_driver_at_least("shipment.resumed", settings),
            timeout=30,
            interval=0.5,
            what="shipment.resumed from each driver",
        )
        assert engine_resumed == faust_resumed
        [fingerprint] = engine_resumed
        assert fingerprint in engine, "resumed carries the stall's fingerprint"
        replayed = await backtested(settings, "logistics.events", until=datetime.now(UTC))
        stalls = Counter({(fp, "firing"): n for fp, n in engine.items()})
        resumed = Counter({(fp, "resolved"): n for fp, n in engine_resumed.items()})
        assert replayed == stalls + resumed
    finally:
        output = await stop_faust_worker(faust_worker)
    assert faust_worker.returncode == 0, output[-3000:]


async def backtested(
    settings: Settings, topic: str, until: datetime | None = None
) -> Counter[tuple[str, str]]:
    """What the backtest replay of a topic's whole range fires: (fingerprint, status)."""
    envelopes = await read_topic_range(settings, settings.topic_prefix + topic)
    events = [event for event in map(decode, envelopes) if event is not None]
    rules = load_for(settings, rule_catalogue()).enabled(STREAM_RULES)
    result = run_backtest(events, rules, load_routing(), until=until)
    return Counter((fired.fingerprint, fired.status) for fired in result.fired)


def by_driver_at_least(
    rule: str, settings: Settings
) -> Callable[[], Awaitable[tuple[Counter[str], Counter[str]] | None]]:
    async def raised() -> tuple[Counter[str], Counter[str]] | None:
        engine, faust = await anomalies_by_driver(settings, rule)
        return (engine, faust) if engine and faust else None

    return raised


async def anomalies_by_driver(settings: Settings, rule: str) -> tuple[Counter[str], Counter[str]]:
    engine: Counter[str] = Counter()
    faust: Counter[str] = Counter()
    topic = settings.topic_prefix + "anomalies.detected"
    for envelope in await events_of_type(settings, topic, "anomaly.detected.v1"):
        if envelope.data["rule"] == rule:
            by = faust if envelope.source.endswith("/faust") else engine
            by[envelope.data["fingerprint"]] += 1
    return engine, faust
