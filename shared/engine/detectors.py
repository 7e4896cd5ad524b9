"""Runs a pure detector rule under the engine: state cached per partition, stored per batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiokafka import TopicPartition

from orderguard.shared import metrics
from orderguard.shared.detection import Rule, State, anomaly_envelope
from orderguard.shared.engine.consumer import Event
from orderguard.shared.events.anomalies import AnomalyDetected
from orderguard.shared.uow import UnitOfWork


def _counter(rule: str, anomaly: AnomalyDetected) -> Callable[[], None]:
    def count() -> None:
        metrics.ANOMALIES_DETECTED.labels(rule, anomaly.severity).inc()
        metrics.DETECTION_LATENCY.labels(rule).observe(
            max(0.0, (anomaly.detected_at - anomaly.event_time).total_seconds())
        )

    return count


class DetectorHandler:
    def __init__(
        self, rule: Rule, topics: Sequence[str], anomalies_topic: str, service: str
    ) -> None:
        self.rule = rule
        self.group = f"{service}.detector.{rule.name}"
        self.topics = list(topics)
        self.event_types = rule.event_types
        self._anomalies_topic = anomalies_topic
        self._source = f"/orderguard/{service}/detector/{rule.name}"
        self._cache: dict[str, State] = {}
        self._keys_by_partition: dict[TopicPartition, set[str]] = {}

    async def handle(self, uow: UnitOfWork, events: list[Event]) -> None:
        rule = self.rule
        keyed = [(rule.key(event), event) for event in events]
        await self._load(
            uow, {key for key, _ in keyed if key is not None and key not in self._cache}
        )
        changed: dict[str, State] = {}
        for key, event in keyed:
            if key is None:
                continue
            self._keys_by_partition.setdefault(
                TopicPartition(event.topic, event.partition), set()
            ).add(key)
            state = self._cache[key]
            new_state, anomalies = rule.apply(state, event, uow.now)
            if new_state is not state:
                self._cache[key] = changed[key] = new_state
            for anomaly in anomalies:
                uow.publish(
                    self._anomalies_topic, anomaly_envelope(anomaly, self._source, event.envelope)
                )
                uow.after_commit(_counter(rule.name, anomaly))
        if changed:
            await uow.conn.executemany(
                "INSERT INTO detector_state (rule, key, state) VALUES ($1, $2, $3)"
                " ON CONFLICT (rule, key) DO UPDATE SET state = EXCLUDED.state, updated_at = now()",
                [(rule.name, key, state) for key, state in changed.items()],
            )

    async def _load(self, uow: UnitOfWork, keys: set[str]) -> None:
        if not keys:
            return
        rows = await uow.conn.fetch(
            "SELECT key, state FROM detector_state WHERE rule = $1 AND key = ANY($2::text[])",
            self.rule.name,
            list(keys),
        )
        for row in rows:
            self._cache[row["key"]] = row["state"]
        for key in keys - {row["key"] for row in rows}:
            self._cache[key] = self.rule.initial_state()

    def drop_cached_state(self, partitions: set[TopicPartition] | None) -> None:
        if partitions is None:
            self._cache.clear()
            self._keys_by_partition.clear()
            return
        for tp in partitions:
            for key in self._keys_by_partition.pop(tp, set()):
                self._cache.pop(key, None)
