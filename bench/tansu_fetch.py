#!/usr/bin/env python
"""What a fetch at the end of a long partition brings on the embedded broker (Tansu).

    .venv/bin/python bench/tansu_fetch.py [--partitions 4] [--batches 1000,5000,10000,20000]

Starts its own Tansu on a free port, fills a topic's partitions with one-record batches (as
the outbox relay writes them at a few orders a second per partition), and at each length
appends one record to every partition and sends one fetch at the previous end of each, with
each fetch wait in `--waits`: prints how long the answer took and how many partitions it
brought records of. Tansu lists every batch of a partition to find the records past the fetch
offset and stops listing when the wait is over, answering those partitions with no records:
why the engine fetches with a long wait while it is behind (`shared/kafka.FetchWait`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.protocol.fetch import FetchRequest

from orderguard.cli.embedded import EmbeddedBroker, free_port

TOPIC = "long"
PAYLOAD = b"x" * 400  # about an order event's size


async def fill(producer: AIOKafkaProducer, partitions: int, batches: int) -> None:
    """`batches` more records on each partition, one batch each (one request per round)."""
    for _ in range(batches):
        sent = [await producer.send(TOPIC, PAYLOAD, partition=p) for p in range(partitions)]
        await producer.flush()
        await asyncio.gather(*sent)


async def measure(partitions: int, lengths: list[int], waits: list[int]) -> None:
    broker = EmbeddedBroker(free_port())
    broker.start()
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(TOPIC, partitions, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        await consumer.start()
        client = consumer._client  # a raw fetch: aiokafka has no public call for one
        await client.force_metadata_update()
        leader = client.cluster.leader_for_partition(TopicPartition(TOPIC, 0))
        print(f"load average {os.getloadavg()[0]:.2f}; {partitions} partitions")
        print(f"{'batches/partition':>17} {'wait ms':>7} {'answered ms':>11} {'with records':>12}")
        held = 0
        for length in lengths:
            await fill(producer, partitions, length - held)
            held = length
            for wait in waits:
                await fill(producer, partitions, 1)  # one new record at every end
                held += 1
                request = FetchRequest(
                    wait,
                    1,
                    50_000_000,
                    0,
                    [(TOPIC, [(p, held - 1, 1 << 20) for p in range(partitions)])],
                )
                started = time.perf_counter()
                response = await client.send(leader, request)
                took_ms = (time.perf_counter() - started) * 1000
                answered = sum(1 for _, parts in response.topics for part in parts if part[-1])
                print(f"{length:17,} {wait:7} {took_ms:11.1f} {answered:>9}/{partitions}")
        await producer.stop()
        await consumer.stop()
    finally:
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batches", default="1000,5000,10000,20000,40000")
    parser.add_argument("--waits", default="10,100,1000")
    args = parser.parse_args()
    asyncio.run(
        measure(
            args.partitions,
            [int(n) for n in args.batches.split(",")],
            [int(n) for n in args.waits.split(",")],
        )
    )


if __name__ == "__main__":
    main()
