"""Whether the consumer groups a worker's group takes over from still run.

Before a group takes a partition over from its handlers' former groups (one group per handler,
from before one group per worker), those groups must have stopped: an old worker still running
keeps applying under its old name, and the new group, starting from the offsets it read, would
apply the same events again. Asked only while a take-over waits, never in steady state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupIdNotFound

from orderguard.shared.settings import Settings


class FormerGroups(Protocol):
    async def still_running(self, groups: Sequence[str]) -> list[str]:
        """Those of `groups` (unprefixed names) that may still have a live worker."""


class GroupMembers:
    """Kafka's answer: a group with members (DescribeGroups) still runs. A member that left is
    gone at once, a crashed one after its session timeout."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self._bootstrap = bootstrap
        self._prefix = prefix

    async def still_running(self, groups: Sequence[str]) -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, request_timeout_ms=5000)
        await admin.start()
        try:
            running = []
            for group in groups:
                # One group per request: Tansu garbles the answer for a second group (measured).
                # An error raises: the caller asks again later.
                [response] = await admin.describe_consumer_groups([self._prefix + group])
                for error_code, _, state, _, _, members, *_ in response.groups:
                    if error_code == GroupIdNotFound.errno:
                        continue  # never existed, or gone (how newer brokers say "Dead")
                    if error_code != 0 or members or state not in ("Empty", "Dead"):
                        running.append(group)
                        break
            return running
        finally:
            await admin.close()


class QuietOffsets:
    """For the embedded Tansu broker, whose DescribeGroups keeps a member that left for good
    (measured: still listed 150 s after a clean stop) and whose ListGroups answers nothing: a
    group whose stored offsets have not moved for `quiet_s` is taken as stopped. Weaker than
    Kafka's answer: an old worker that runs but receives nothing looks stopped."""

    def __init__(self, pool: asyncpg.Pool, quiet_s: float) -> None:
        self._pool = pool
        self._quiet_s = quiet_s

    async def still_running(self, groups: Sequence[str]) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT DISTINCT group_id FROM consumer_offsets WHERE group_id = ANY($1::text[])"
            " AND updated_at > now() - make_interval(secs => $2)",
            list(groups),
            self._quiet_s,
        )
        return sorted(row["group_id"] for row in rows)


def former_groups(settings: Settings, pool: asyncpg.Pool) -> FormerGroups:
    if settings.kafka_embedded_compat:
        # Offsets move with every batch; three session timeouts outlast a rebalance's pause.
        return QuietOffsets(pool, 3 * settings.consumer_session_timeout_ms / 1000)
    return GroupMembers(settings.kafka_bootstrap, settings.topic_prefix)
