"""An oversized record on a consumed topic, and an outbox row Kafka refuses, stop nothing.

Real embedded broker and PostgreSQL. A ~1.2 MB record on payments.events (a foreign producer:
Tansu does not enforce the topic's max.message.bytes) is dead-lettered with a bounded copy and
where the original is; the order service stays ready and applies the payment sent after it.
An outbox row over the producer's limit is parked with the reason; the rows after it go out.
"""

from __future__ import annotations

from typing import Any

import orjson
from orderflow import order_view, payment, place, send, topic, wait_status
from testkit import publish, read_topic, wait_until

from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared import metrics
from orderguard.shared.dead_letters import OVERSIZED_COPY_BYTES
from orderguard.shared.kafka import MAX_RECORD_BYTES
from orderguard.shared.outbox import OutboxMessage, write_outbox
from orderguard.shared.settings import Settings
from orderguard.shared.topics import Topics

PAYMENTS_GROUP = "order.worker"  # the order worker reads payments.events as its one group


async def test_an_oversized_payment_is_dead_lettered_bounded_and_later_payments_apply(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER)
    await order.wait_assigned()
    order_id = (await place(order))["order_id"]

    # A valid payment envelope padded to ~1.2 MB, on the order's key (the partition of what follows).
    huge = payment("succeeded", order_id, "pay-huge")
    body = orjson.loads(huge.to_json())
    body["data"]["padding"] = "x" * 1_200_000
    value = orjson.dumps(body)
    assert len(value) > MAX_RECORD_BYTES
    await publish(
        settings,
        topic(settings, "payments.events"),
        value,
        key=order_id.encode(),
        headers=list(huge.kafka_headers()),
        max_request_size=2 * 1024 * 1024,
    )
    await send(settings, "payments.events", payment("succeeded", order_id, "pay-1"))

    view = await wait_status(order, order_id, "paid")
    assert view["payment_id"] == "pay-1"
    dead_letter_topic = Topics.dead_letter(topic(settings, "payments.events"), PAYMENTS_GROUP)
    [letter] = await wait_until(
        lambda: read_topic(settings, dead_letter_topic), what="the oversized dead letter"
    )
    assert letter.headers["dlq_reason"] == b"oversized"
    assert letter.headers["dlq_truncated"] == b"true"
    assert int(letter.headers["dlq_original_bytes"]) == len(value)
    assert letter.value == value[:OVERSIZED_COPY_BYTES]
    assert letter.key == order_id.encode()
    # Where the original is: the very record we sent.
    originals = [
        r
        for r in await read_topic(settings, topic(settings, "payments.events"))
        if r.partition == int(letter.headers["dlq_partition"])
        and r.offset == int(letter.headers["dlq_offset"])
    ]
    assert [r.value for r in originals] == [value]

    # Nothing parked, nothing stuck in the outbox, the service ready all along.
    pool = order.runtime.pool
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL") == 0
    await wait_until(
        lambda: _outbox_drained(pool), what="outbox drained (the dead letter published)"
    )
    assert all((await order.runtime.readiness()).values())
    assert (await order_view(order, order_id))["status"] == "paid"


async def test_an_outbox_row_kafka_refuses_is_parked_and_the_rows_after_it_are_published(
    settings: Settings, start_service: Any
) -> None:
    order = await start_service(ORDER)
    await order.wait_assigned()
    pool = order.runtime.pool
    target = topic(settings, "orders.events")
    parked_before = metrics.OUTBOX_PARKED.labels("orders", target)._value.get()
    messages = [
        OutboxMessage(target, b"k", b"before"),
        OutboxMessage(target, b"k", b"x" * (2 * MAX_RECORD_BYTES)),
        *(OutboxMessage(target, b"k", f"after-{n}".encode()) for n in range(5)),
    ]
    async with pool.acquire() as conn, conn.transaction():
        await write_outbox(conn, "orders", messages)

    await wait_until(lambda: _outbox_drained(pool), what="every row sent or parked")
    [parked] = await pool.fetch(
        "SELECT length(value) AS size, parked_reason FROM outbox WHERE parked_at IS NOT NULL"
    )
    assert parked["size"] == 2 * MAX_RECORD_BYTES
    assert parked["parked_reason"].startswith("MessageSizeTooLargeError")
    assert metrics.OUTBOX_PARKED.labels("orders", target)._value.get() == parked_before + 1
    # The others went out, in order, on their key's partition.
    values = [r.value for r in await read_topic(settings, target) if r.key == b"k"]
    assert values == [b"before", *(f"after-{n}".encode() for n in range(5))]
    assert order.runtime.relay.is_leader and all((await order.runtime.readiness()).values())


async def _outbox_drained(pool: Any) -> bool:
    unsent = await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND parked_at IS NULL"
    )
    return bool(unsent == 0)
