"""Thousands of malformed records on every topic the services consume, interleaved with real
traffic: each bad record reaches the dead-letter topic of every consumer group that reads it,
with a reason; each valid event is applied once; every service stays ready.

All five services in-process on the real embedded broker and PostgreSQL. The bad records carry
no `ce_type` header (or a junk one of another name), so every group must read them to judge
them. FAULT_FUZZ_RECORDS sets how many per topic (default 250).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from orderflow import order_body, payment, send, topic, wait_status
from testkit import read_topic, wait_until

from orderguard.services.aftersales.bootstrap import DEFINITION as AFTERSALES
from orderguard.services.inventory.bootstrap import DEFINITION as INVENTORY
from orderguard.services.logistics.bootstrap import DEFINITION as LOGISTICS
from orderguard.services.notifier.bootstrap import DEFINITION as NOTIFIER
from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared import metrics
from orderguard.shared.kafka import MAX_RECORD_BYTES
from orderguard.shared.settings import Settings
from orderguard.shared.topics import Topics

PER_TOPIC = int(os.environ.get("FAULT_FUZZ_RECORDS", "250"))
OVERSIZED_PER_TOPIC = 2
ORDERS = 12
SKU = "SKU-FUZZ"
REASONS = {"malformed", "oversized"}

Bad = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


def bad_record(rnd: random.Random, n: int) -> Bad:
    """One malformed record: the n-th kind, with random content."""
    key = f"k-{rnd.randrange(50)}".encode()
    junk_headers = [("x-junk", bytes(rnd.randrange(256) for _ in range(8)))] if n % 3 else []
    kind = n % 8
    if kind == 0:  # not JSON at all
        value = b"\x00" + bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 200)))
    elif kind == 1:  # JSON, not an envelope
        value = rnd.choice([b"[1, 2, 3]", b'{"hello": "world"}', b'"text"', b"42", b"null"])
    elif kind == 2:  # an envelope with wrong types
        value = orjson.dumps(
            {"specversion": 1, "id": [n], "type": 5, "source": None, "subject": {}, "data": "x"}
        )
    elif kind == 3:  # huge values in an envelope of another specversion
        value = orjson.dumps(
            {"specversion": "9.9", "id": "x" * 50_000, "type": "y" * 100_000, "data": {}}
        )
    elif kind == 4:  # not UTF-8
        value = b'{"specversion": "1.0", "id": "\xff\xfe\xfd", "type": "\xc3\x28"}'
    elif kind == 5:  # no value (a tombstone)
        value = None
    elif kind == 6:  # no key, truncated JSON
        key, value = (
            None,
            b'{"specversion": "1.0", "id": "e-1", "type": "order.placed.v1", "data": {',
        )
    else:  # valid JSON, the envelope's required fields missing
        value = orjson.dumps({"specversion": "1.0", "data": {"order_id": f"o-{n}"}})
    return key, value, junk_headers


async def test_malformed_records_are_dead_lettered_and_valid_events_applied_once(
    settings: Settings, start_service: Any
) -> None:
    services = {
        d.name: await start_service(d) for d in (ORDER, INVENTORY, LOGISTICS, AFTERSALES, NOTIFIER)
    }
    for service in services.values():
        await service.wait_assigned()
    readers: dict[str, list[str]] = {}  # consumed topic -> the groups that read it
    for service in services.values():
        for engine in service.runtime.engines:
            for consumed in engine.topics:
                readers.setdefault(consumed, []).append(engine.group)
    assert topic(settings, "payments.events") in readers and len(readers) >= 6

    put = await services["inventory"].client.put(f"/stock/{SKU}/main", json={"on_hand": 1000})
    assert put.status_code == 200, put.text
    dead_before = {
        (t, g): sum(metrics.DEAD_LETTERS.labels(t, g, r)._value.get() for r in REASONS)
        for t, groups in readers.items()
        for g in groups
    }

    rnd = random.Random(15)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=False,
        max_request_size=2 * MAX_RECORD_BYTES,
        linger_ms=5,
    )
    await producer.start()
    order_ids: list[str] = []
    sent_bad: Counter[str] = Counter()
    try:

        async def inject(count: int) -> None:
            sends = []
            for consumed in readers:
                for _ in range(count):
                    key, value, headers = bad_record(rnd, sent_bad[consumed])
                    sends.append(await producer.send(consumed, value, key=key, headers=headers))
                    sent_bad[consumed] += 1
            for future in sends:
                await future

        for n in range(ORDERS):
            placed = await services["order"].client.post(
                "/orders", json=order_body(customer_id=f"c-{n}", sku=SKU)
            )
            assert placed.status_code == 201, placed.text
            order_ids.append(placed.json()["order_id"])
            await inject(PER_TOPIC // (2 * ORDERS))
            await send(settings, "payments.events", payment("succeeded", order_ids[-1], f"p-{n}"))
            await inject(PER_TOPIC // (2 * ORDERS))
        for consumed in readers:  # oversized ones, and the rest of the count
            while sent_bad[consumed] < PER_TOPIC:
                key, value, headers = bad_record(rnd, sent_bad[consumed])
                await producer.send(consumed, value, key=key, headers=headers)
                sent_bad[consumed] += 1
            for _ in range(OVERSIZED_PER_TOPIC):
                huge = b"{" + b" " * (MAX_RECORD_BYTES + 10_000) + b"}"
                await producer.send(consumed, huge, key=b"big")
                sent_bad[consumed] += 1
        await producer.flush()
    finally:
        await producer.stop()
    assert sum(sent_bad.values()) >= 2000 or PER_TOPIC < 250

    # Valid events, applied once: every order paid once, one unit reserved per order.
    for order_id in order_ids:
        view = await wait_status(services["order"], order_id, "paid", timeout=120)
        assert [e["what"] for e in view["timeline"]].count("paid") == 1

    async def reserved() -> int:
        [stock] = (await services["inventory"].client.get(f"/stock/{SKU}")).json()
        return int(stock["reserved"])

    await wait_until(lambda: _is(reserved(), ORDERS), timeout=60, what="one unit per order")
    for order_id in order_ids:
        lines = (await services["inventory"].client.get(f"/reservations/{order_id}")).json()
        assert [line["quantity"] for line in lines] == [1], lines

    # Every bad record dead-lettered by every group that read it, with a reason.
    async def all_judged() -> bool:
        return all(
            sum(metrics.DEAD_LETTERS.labels(t, g, r)._value.get() for r in REASONS)
            - dead_before[(t, g)]
            >= sent_bad[t]
            for t, groups in readers.items()
            for g in groups
        )

    await wait_until(all_judged, timeout=240, interval=1.0, what="every bad record judged")
    for service in services.values():
        await wait_until(
            lambda pool=service.runtime.pool: _outbox_drained(pool),
            timeout=120,
            what=f"{service.runtime.definition.name} outbox published",
        )
    for consumed, groups in readers.items():
        for group in groups:
            letters = await read_topic(settings, Topics.dead_letter(consumed, group))
            reasons = Counter(letter.headers["dlq_reason"].decode() for letter in letters)
            assert sum(reasons.values()) == sent_bad[consumed], (consumed, group, reasons)
            assert set(reasons) <= REASONS and reasons["oversized"] == OVERSIZED_PER_TOPIC
            assert all(letter.headers["dlq_error"] for letter in letters)
            assert all(
                len(letter.value) <= 64 * 1024
                for letter in letters
                if letter.headers["dlq_reason"] == b"oversized"
            )

    for name, service in services.items():
        checks = await service.runtime.readiness()
        assert all(checks.values()), (name, checks)
        assert not service.runtime.failed, name


async def _is(value: Any, expected: int) -> bool:
    return bool(await value == expected)


async def _outbox_drained(pool: Any) -> bool:
    unsent = await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND parked_at IS NULL"
    )
    return bool(unsent == 0)
