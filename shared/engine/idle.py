"""Fetch while records flow; while idle, fetch only when told that something was published.

Tansu answers a fetch after `fetch_max_wait_ms` even when it has nothing, and does not wake
early when records arrive: latency follows the wait, and every consumer polling with a short
wait keeps the broker busy. Measured on an idle `orderguard up` (27 consumer groups, 2 cores):
a 10 ms wait cost 1.27 cores (broker 0.71); a 500 ms wait still 0.18-0.22 and a 2 s wait
0.10 — each idle fetch costs Tansu about 1 ms — while a long wait makes the first event after
a quiet spell wait that long at every hop.

So an engine keeps the short wait while records flow and, after `idle_after_s` without
records, pauses its partitions: no fetch at all. Every outbox relay of orderguard announces
the topics it has just published on one PostgreSQL channel (`PUBLISHED_CHANNEL`); the engines
of the process that read one of those topics resume at once. Publishers outside orderguard
(a payment provider on Kafka) and a missed notification are covered by one probing fetch
every `probe_every_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable

import asyncpg
from aiokafka import AIOKafkaConsumer

from orderguard.shared.outbox import PUBLISHED_CHANNEL

# A probe is one fetch that Tansu holds this long: found records arrive within it.
PROBE_FETCH_WAIT_MS = 100


class PublishedTopics:
    """One LISTEN connection per process, waking the engines that read a topic just published."""

    def __init__(self) -> None:
        self._waiters: dict[str, list[asyncio.Event]] = {}
        self._conn: asyncpg.Connection | None = None

    def watch(self, topics: Iterable[str]) -> asyncio.Event:
        """An event set whenever one of `topics` has been published to."""
        event = asyncio.Event()
        for topic in topics:
            self._waiters.setdefault(topic, []).append(event)
        return event

    async def start(self, database_url: str) -> None:
        self._conn = await asyncpg.connect(database_url)
        await self._conn.add_listener(PUBLISHED_CHANNEL, self._published)

    def _published(self, conn: object, pid: int, channel: str, payload: str) -> None:
        for topic in payload.split(","):
            for event in self._waiters.get(topic, ()):
                event.set()

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()


class IdleFetching:
    """When an engine's consumer fetches: continuously while records flow, else when woken."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        woken: asyncio.Event,
        idle_after_s: float = 1.0,
        probe_every_s: float = 5.0,
        tick_s: float = 1.0,
    ) -> None:
        self._consumer = consumer
        self._active_wait_ms: int = consumer._fetch_max_wait_ms  # as configured (make_consumer)
        self._woken = woken
        self._idle_after_s = idle_after_s
        self._probe_every_s = probe_every_s
        # While idle the engine's loop still turns this often (deadline sweeps, readiness).
        self._tick_s = tick_s
        self._last_records = time.monotonic()
        self._next_probe = 0.0
        self._probing = False
        self.idle = False

    def active(self) -> None:
        """Fetch continuously from now on (records arrived, partitions were assigned)."""
        self._last_records = time.monotonic()
        if self._probing:
            self._probing = False
            self._fetch_wait(self._active_wait_ms)
        if self.idle:
            self.idle = False
            self._consumer.resume(*self._consumer.assignment())

    @property
    def poll_timeout_ms(self) -> int:
        # A probe waits for the one long fetch it sends; a poll otherwise takes 200 ms at most.
        return PROBE_FETCH_WAIT_MS + 100 if self._probing else 200

    def _fetch_wait(self, ms: int) -> None:
        """The fetch wait of the consumer's next fetch requests. aiokafka (pinned 0.14.0) reads
        it from its fetcher for every request and has no public setter: with the short wait a
        probe would send a fetch every ~10 ms until `getmany` gives up, with a long one it is a
        single request."""
        self._consumer._fetcher._fetch_max_wait_ms = ms

    async def before_poll(self, stop: asyncio.Event) -> bool:
        """Wait while idle until there may be records; True when the next poll may fetch."""
        now = time.monotonic()
        if not self.idle:
            if now - self._last_records < self._idle_after_s:
                return True
            self.idle = True
            self._consumer.pause(*self._consumer.assignment())
            self._next_probe = now + self._probe_every_s
        timeout = max(0.0, min(self._tick_s, self._next_probe - now))
        if not self._woken.is_set() and timeout > 0:
            waits = {asyncio.ensure_future(self._woken.wait()), asyncio.ensure_future(stop.wait())}
            _, pending = await asyncio.wait(
                waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
        if self._woken.is_set():
            # Cleared before fetching: what is announced after this fetch wakes us again.
            self._woken.clear()
            self.active()
            return True
        if time.monotonic() >= self._next_probe:
            self._next_probe = time.monotonic() + self._probe_every_s
            self._probing = True
            self._fetch_wait(PROBE_FETCH_WAIT_MS)
            self._consumer.resume(*self._consumer.assignment())
            return True
        return False

    def after_poll(self, had_records: bool) -> None:
        if had_records:
            self.active()
        elif self._probing:
            self._probing = False
            self._consumer.pause(*self._consumer.assignment())
            self._fetch_wait(self._active_wait_ms)
