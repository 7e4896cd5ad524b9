"""Fetch while records flow; while idle, fetch only when told that something was published.

Tansu answers a fetch after `fetch_max_wait_ms` even when it has nothing, and does not wake
early when records arrive: latency follows the wait, and every consumer polling with a short
wait keeps the broker busy. Measured on an idle `orderguard up` (27 consumer groups, 2 cores):
a 10 ms wait cost 1.27 cores (broker 0.71); a 500 ms wait still 0.18-0.22 and a 2 s wait
0.10 — each idle fetch costs Tansu about 1 ms — while a long wait makes the first event after
a quiet spell wait that long at every hop.

So an engine rests, its partitions paused and no fetch sent, whenever a poll has read every
partition to its end (with `flowing_fetch_every_s`; without it, only after `idle_after_s`
without records). aiokafka's fetcher otherwise sends the next fetch the moment a batch is
taken: a trickle of records cost a fetch, mostly empty, every 12-15 ms per worker. Every outbox
relay of orderguard announces the topics and event types it has just published on one
PostgreSQL channel (`PUBLISHED_CHANNEL`); the engines of the process that apply one of those
types from one of those topics resume and fetch what is there: at once, or, when their last
fetch was less than `linger_s` ago, once it is that old, so that what a busy relay announces
meanwhile comes in the same fetch and batch. An engine is not woken
for the types it does not apply (a worker reading a topic for a few of its types: each fetch
that finds records costs Tansu more the longer its log, see `high_watermarks`): it reads past
them at its next look or probe, and records only of such types count as none for when it looks
and when it is idle. Publishers outside orderguard (a payment provider on Kafka) and a
missed notification are covered while records flow by a look, one fetch every
`flowing_fetch_every_s` (less often while looks find nothing), and after `idle_after_s` without
records by a probe every `probe_every_s`: the partitions' high watermarks against the
consumer's positions, from one fetch at the offsets where each log ended at the last probe,
held 1 ms and reading at most a batch (see `high_watermarks`). A backlog (a full batch, a
partition behind its high watermark) is read without rest.
When the LISTEN connection is lost (PostgreSQL restarted), it is opened again, with backoff,
and every resting engine looks once: what was announced meanwhile was told to no one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import NoError, for_code
from aiokafka.protocol.fetch import FetchRequest

from orderguard.shared.logging import get_logger
from orderguard.shared.outbox import PUBLISHED_CHANNEL
from orderguard.shared.stopping import stopped_within

log = get_logger(__name__)

# Beyond the fetch wait, how long a poll of a resting engine waits for the broker's answer.
POLL_ROUND_TRIP_MS = 10
# How long a poll waits for records known to be there: found by a probe, or (without
# `flowing_fetch_every_s`) announced.
WOKEN_POLL_TIMEOUT_MS = 200
# How long the broker may hold a probe's fetch (0 makes Tansu answer without any partition).
PROBE_WAIT_MS = 1

HighWatermarks = Callable[
    [AIOKafkaConsumer, dict[TopicPartition, int]], Awaitable[dict[TopicPartition, int]]
]


async def high_watermarks(
    consumer: AIOKafkaConsumer, from_offsets: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """The high watermarks of the partitions in `from_offsets`, from one fetch per leader at
    those offsets (held `PROBE_WAIT_MS`, reading at most one batch); partitions answered with an
    error are left out. Not ListOffsets: Tansu answers that by listing every batch a partition
    holds, so its cost grows with the log (12 partitions of 4,000 batches: 31 ms of broker CPU a
    request), while a fetch at the end reads the watermark alone (0.4-0.8 ms at any depth); it
    also answers "last batch's base offset + 1", a fetch the true high watermark."""
    by_leader: dict[int, dict[str, list[tuple[int, int, int]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    client = consumer._client  # aiokafka has no public call for a fetch of our own
    for tp, offset in from_offsets.items():
        leader = client.cluster.leader_for_partition(tp)
        if leader is None or leader == -1:
            continue  # unknown leader: left out, so the engine fetches and aiokafka finds it
        by_leader[leader][tp.topic].append((tp.partition, offset, 1))
    ends: dict[TopicPartition, int] = {}
    for leader, topics in by_leader.items():
        request = FetchRequest(PROBE_WAIT_MS, 1, 1, 0, list(topics.items()))
        response = await client.send(leader, request)
        for topic, partitions in response.topics:
            for partition, error_code, highwater, *_ in partitions:
                if for_code(error_code) is NoError:
                    ends[TopicPartition(topic, partition)] = highwater
    return ends


class Wakeups:
    """What wakes the resting engines of one process: the relays' announcements (one LISTEN
    connection) and the partitions' high watermarks (one probe per probe period for every
    engine of the process, whatever their number)."""

    def __init__(
        self,
        probe_every_s: float = 0.1,
        reconnect_after_s: float = 0.5,
        connect: Callable[[str], Awaitable[asyncpg.Connection]] = asyncpg.connect,
        ask_ends: HighWatermarks = high_watermarks,
    ) -> None:
        self.probe_every_s = probe_every_s
        self._ask_ends = ask_ends
        # Per topic: who to wake, and for which event types (None: any).
        self._waiters: dict[str, list[tuple[asyncio.Event, frozenset[str] | None]]] = {}
        self._connect = connect
        self._database_url = ""
        self._conn: asyncpg.Connection | None = None
        self._reconnect_after_s = reconnect_after_s
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False
        self._ends: dict[TopicPartition, int] = {}
        self._ends_at = -1.0
        self._answer = 0  # which probe's answer `_ends` holds (the count of probes asked)
        self._asking = asyncio.Lock()

    def watch(
        self, topics: Iterable[str], event_types: frozenset[str] | None = None
    ) -> asyncio.Event:
        """An event set whenever one of `topics` has been published to: with `event_types`,
        only when an event of one of them was (or a relay did not say which types)."""
        event = asyncio.Event()
        for topic in topics:
            self._waiters.setdefault(topic, []).append((event, event_types))
        return event

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def start(self, database_url: str) -> None:
        self._database_url = database_url
        await self._listen()

    async def _listen(self) -> None:
        conn = await self._connect(self._database_url)
        try:
            await conn.add_listener(PUBLISHED_CHANNEL, self._published)
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.close()
            raise
        conn.add_termination_listener(self._lost)
        self._conn = conn

    def _lost(self, conn: object) -> None:
        """The LISTEN connection closed (asyncpg calls this also on our own close)."""
        if self._closed or self._reconnecting is not None:
            return
        self._conn = None
        log.warning("lost the connection that hears publications; reconnecting")
        self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = self._reconnect_after_s
        try:
            while not self._closed:
                await asyncio.sleep(delay)
                try:
                    await self._listen()
                except Exception as exc:  # refused, starting up, timed out: try again later
                    delay = min(delay * 2, 10.0)
                    log.debug("reconnect to hear publications failed", error=repr(exc))
                    continue
                log.info("hearing publications again")
                # Announcements made while no one listened are lost: every resting engine looks.
                for waiters in self._waiters.values():
                    for event, _ in waiters:
                        event.set()
                return
        finally:
            self._reconnecting = None

    def _published(self, conn: object, pid: int, channel: str, payload: object) -> None:
        # NOTIFY payloads are text: comma-separated `topic:type` (`outbox.announcement`), or
        # `topic` alone where the type is not known.
        for published in str(payload).split(","):
            topic, _, event_type = published.partition(":")
            for event, event_types in self._waiters.get(topic, ()):
                if not event_type or event_types is None or event_type in event_types:
                    event.set()

    async def end_offsets(
        self, consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition], after: int
    ) -> tuple[dict[TopicPartition, int], int]:
        """The end offsets of `partitions` the broker answered, and which answer that was (a
        count). One engine asks for every partition the process has asked about; another
        probing within the period reads that answer, but never the one it read at its last probe
        (`after`): asked a few ms after that probe was due, it would still be fresh at the next,
        and every other probe would ask nothing. Each partition is asked from where it ended at
        the last probe (a partition not asked about before: from this consumer's position), so
        a log that did not grow costs the broker no read."""
        wanted = set(partitions)
        async with self._asking:
            fresh = (
                self._answer > after
                and time.monotonic() - self._ends_at < self.probe_every_s
                and wanted <= self._ends.keys()
            )
            if not fresh:
                since = dict(self._ends)
                for tp in wanted - since.keys():
                    since[tp] = await consumer.position(tp)
                self._ends = await self._ask_ends(consumer, since)
                self._ends_at = time.monotonic()
                self._answer += 1
        return {tp: self._ends[tp] for tp in wanted if tp in self._ends}, self._answer

    async def close(self) -> None:
        self._closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()


class IdleFetching:
    """When an engine's consumer fetches. Without `flowing_fetch_every_s`: continuously while
    records flow, and after `idle_after_s` without records only when woken. With it: whenever a
    poll has read every partition to its end, the engine rests until an announcement wakes it,
    or, while records flow, until its next look (a fetch) every `flowing_fetch_every_s`; once
    quiet, until a probe of the end offsets finds records."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topics: Iterable[str],
        wakeups: Wakeups,
        event_types: frozenset[str] | None = None,
        idle_after_s: float = 1.0,
        tick_s: float = 1.0,
        flowing_fetch_every_s: float = 0.0,
        fetch_wait_ms: int = 10,
        linger_s: float = 0.0,
    ) -> None:
        self._consumer = consumer
        self._wakeups = wakeups
        self._woken = wakeups.watch(topics, event_types)
        self._idle_after_s = idle_after_s
        self._probe_every_s = wakeups.probe_every_s
        # While idle the engine's loop still turns this often (deadline sweeps, readiness).
        self._tick_s = tick_s
        self._flowing_fetch_every_s = flowing_fetch_every_s
        self._fetch_wait_ms = fetch_wait_ms
        # A woken engine's fetches at least this far apart (see `_linger`).
        self._linger_s = linger_s
        self._polled_at = -linger_s
        self._last_records = time.monotonic()
        # When a resting engine next looks (flowing) or probes (quiet).
        self._next_probe = 0.0
        self._answer_read = 0  # which of the process's probe answers the last probe read
        # Paused until woken: idle, or (with flowing_fetch_every_s) read to the end.
        self._resting = False
        self.idle = False
        # Between two looks while records flow: flowing_fetch_every_s while looks find records
        # (a publisher outside orderguard is writing), doubled after each that finds none.
        self._look_every_s = flowing_fetch_every_s
        self._looking = False
        # When the current poll began (wall clock, ms, as aiokafka stamps the broker's answers).
        self._poll_since_ms = 0.0
        self.poll_timeout_ms = WOKEN_POLL_TIMEOUT_MS

    def _polling(self, timeout_ms: int) -> bool:
        """The next poll fetches, waiting up to `timeout_ms` for records."""
        self._poll_since_ms = time.time() * 1000
        self._polled_at = time.monotonic()
        self.poll_timeout_ms = timeout_ms if self._flowing_fetch_every_s else WOKEN_POLL_TIMEOUT_MS
        return True

    def _polling_one_answer(self) -> bool:
        """The next poll fetches and lasts one fetch's answer (the broker holds an empty one
        for the fetch wait); a poll that ends without an answer polls again (after_poll)."""
        return self._polling(self._fetch_wait_ms + POLL_ROUND_TRIP_MS)

    def active(self) -> None:
        """Fetch from now on, as while records flow (partitions were assigned, or woken)."""
        self._last_records = time.monotonic()
        self._resume()

    def _resume(self) -> None:
        if self._resting:
            self._resting = self.idle = False
            self._consumer.resume(*self._consumer.assignment())

    def _rest(self) -> None:
        if not self._resting:
            self._resting = True
            self._consumer.pause(*self._consumer.assignment())
            self._next_probe = time.monotonic() + (
                self._probe_every_s if self._quiet() else self._look_every_s
            )

    def _quiet(self) -> bool:
        return time.monotonic() - self._last_records >= self._idle_after_s

    async def before_poll(self, stop: asyncio.Event) -> bool:
        """Wait while resting until there may be records; True when the next poll may fetch."""
        quiet = self._quiet()
        if not self._resting:
            if not quiet:
                self._woken.clear()  # this fetch reads what was announced until now
                # One fetch's answer (Tansu holds an empty one for the fetch wait), not fetch
                # after fetch; a later answer is polled for again.
                return self._polling_one_answer()
            self._rest()
        self.idle = quiet
        timeout = max(0.0, min(self._tick_s, self._next_probe - time.monotonic()))
        if not self._woken.is_set() and timeout > 0:
            waits = {asyncio.ensure_future(self._woken.wait()), asyncio.ensure_future(stop.wait())}
            _, pending = await asyncio.wait(
                waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
        if self._woken.is_set():
            await self._linger(stop)
            # Cleared before fetching: what is announced after this fetch wakes us again.
            self._woken.clear()
            self.active()
            # Records were announced: the broker has them, so the fetch sent after this wake
            # brings them. The poll lasts one fetch's answer, as a look's does (one that ends
            # without an answer polls again, after_poll): each announcement wakes every engine
            # reading its topic, often for records an earlier poll already read, and a poll
            # waiting 200 ms for records sent fetch after fetch meanwhile (Tansu answers an empty
            # one after its wait): in some runs, with orders trickling in at 10/s, twice the
            # broker's CPU per order and 40 % more of the whole system's.
            return self._polling_one_answer()
        if time.monotonic() < self._next_probe:
            return False
        if not self._quiet():
            # A look while records flow: one fetch, for publishers outside orderguard (cheaper
            # on Tansu than asking for the end offsets, and what it finds is read at once).
            self._looking = True
            self._resume()
            return self._polling_one_answer()
        self._next_probe = time.monotonic() + self._probe_every_s
        if await self._records_waiting():
            self.active()
            return self._polling(WOKEN_POLL_TIMEOUT_MS)
        return False

    async def _linger(self, stop: asyncio.Event) -> None:
        """Hold a woken engine's fetch until `linger_s` after its last one: what is announced
        meanwhile comes with it, applied in one batch (one fetch, one transaction, one relay
        cycle after it) instead of one small batch per announcement. An engine fetching less
        often than that (a quiet system, a trickle) fetches at once. At 200 orders/s a linger
        of 50 ms took a third of the whole system's CPU per order (docs/performance.md,
        session 17)."""
        hold = self._polled_at + self._linger_s - time.monotonic()
        if hold > 0:
            await stopped_within(stop, hold)

    async def _records_waiting(self) -> bool:
        """Whether an owned partition ends past this consumer's position, or the broker did not
        say where it ends."""
        assigned = list(self._consumer.assignment())
        if not assigned:
            return False
        try:
            ends, self._answer_read = await self._wakeups.end_offsets(
                self._consumer, assigned, self._answer_read
            )
            for tp in assigned:
                if tp not in ends or ends[tp] > await self._consumer.position(tp):
                    return True
        except Exception as exc:  # an unanswered probe must not hide records: fetch instead
            log.debug("idle probe failed; fetching", error=repr(exc))
            return True
        return False

    def _answered_since(self, since_ms: float) -> bool:
        """Whether the broker answered a fetch since `since_ms` (one answer covers every owned
        partition the fetch asked for)."""
        return any(
            (self._consumer.last_poll_timestamp(tp) or 0) >= since_ms
            for tp in self._consumer.assignment()
        )

    def after_poll(self, had_records: bool, caught_up: bool = True) -> None:
        """After a poll, before anything awaits (aiokafka's fetcher sends its next fetch as soon
        as the loop turns): with `flowing_fetch_every_s`, an engine that has read every
        partition to its end rests at once, so it sends no fetch until there may be records.
        `had_records`: records that count as flowing (`Engine._flowing`): not records the
        engine only reads past, once it has read to the end."""
        if had_records:
            self._last_records = time.monotonic()
        if not self._flowing_fetch_every_s:
            return
        # Records from an answer that came before this poll (kept while the engine rested) may
        # be long read past: fetch again at once rather than rest on them.
        fresh = self._answered_since(self._poll_since_ms)
        if self._looking and (had_records or fresh):
            self._looking = False
            self._look_every_s = (
                self._flowing_fetch_every_s
                if had_records
                else min(2 * self._look_every_s, self._probe_every_s)
            )
        # Without an answer yet (a busy broker) the next poll waits for the fetch in flight;
        # aiokafka sends no second one meanwhile.
        if caught_up and fresh:
            self._rest()
