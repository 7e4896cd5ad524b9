"""What the system raised: anomalies on `anomalies.detected` and intake holds (`order.held.v1`
with reason address_incomplete or phone_invalid) on `orders.events`, read without a consumer
group, like any tool watching the topics."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import datetime

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from orderguard.scenario.quality import Observation, observation_of_anomaly, observation_of_hold
from orderguard.shared.topics import Topics


def _observation(topic_kind: str, value: bytes) -> Observation | None:
    try:
        envelope = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if topic_kind == "anomalies" and envelope.get("type") == "anomaly.detected.v1":
        return observation_of_anomaly(envelope["data"])
    if topic_kind == "orders" and envelope.get("type") == "order.held.v1":
        return observation_of_hold(envelope["data"])
    return None


class Observer:
    """Follows anomalies.detected and orders.events from the beginning; keeps what they raised."""

    def __init__(self, bootstrap: str, topic_prefix: str = "", since: datetime | None = None):
        topics = Topics(topic_prefix)
        self.kinds = {topics.anomalies: "anomalies", topics.orders: "orders"}
        self.bootstrap = bootstrap
        self.since = since
        self.observations: list[Observation] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    def firing_by_rule(self) -> Counter[str]:
        return Counter(o.rule for o in self.observations if o.status == "firing")

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False
        )
        await self._consumer.start()
        partitions = await self._partitions()
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        self._task = asyncio.create_task(self._follow())

    async def _partitions(self) -> list[TopicPartition]:
        assert self._consumer is not None
        for _ in range(50):
            found = [
                TopicPartition(topic, p)
                for topic in self.kinds
                for p in (self._consumer.partitions_for_topic(topic) or set())
            ]
            if {tp.topic for tp in found} == set(self.kinds):
                return found
            await self._consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topics not found on {self.bootstrap}: {sorted(self.kinds)}")

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batch.items():
                for record in records:
                    found = _observation(self.kinds[tp.topic], record.value or b"")
                    if found and (self.since is None or found.detected_at >= self.since):
                        self.observations.append(found)

    async def caught_up(self) -> bool:
        """Everything on the topics right now has been read."""
        assert self._consumer is not None
        for tp in self._consumer.assignment():
            end = (await self._consumer.end_offsets([tp]))[tp]
            if await self._consumer.position(tp) < end:
                return False
        return True

    async def drain(self, timeout_s: float = 30.0) -> list[Observation]:
        """Wait until caught up with the topics as they are now; what was observed."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not await self.caught_up():
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.1)
        return list(self.observations)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer:
            await self._consumer.stop()


async def read_observations(
    bootstrap: str, topic_prefix: str = "", since: datetime | None = None
) -> list[Observation]:
    """Everything raised so far (from `since`)."""
    observer = Observer(bootstrap, topic_prefix, since)
    await observer.start()
    try:
        return await observer.drain()
    finally:
        await observer.stop()
