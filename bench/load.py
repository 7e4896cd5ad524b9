"""An open-loop HTTP/1.1 load generator: requests go out on a fixed schedule, whatever the server does.

Request i is due at t0 + i/rate; it takes an idle keep-alive connection or opens one (up to
`max_connections`; past that the request counts as an error, never as a delay). Latency is
measured from the time the request was *due*, so a slow server cannot slow the offered rate
or hide its queueing (no coordinated omission). `send_lag_p99_ms` says how late the
generator itself sent: it holds the rate when that stays within a few milliseconds.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    offered: float
    seconds: float
    sent: int
    ok: int
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    send_lags_ms: list[float] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    @property
    def served_rate(self) -> float:
        return self.ok / self.seconds

    @property
    def all_served(self) -> bool:
        return self.ok == self.sent and not self.errors

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def send_lag_p99_ms(self) -> float:
        return percentile(self.send_lags_ms, 0.99)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# A keep-alive connection idle longer than this is not reused (closed, and a new one opened):
# uvicorn closes one idle for 5 s, and a request sent as it does so fails with no answer
# (`IncompleteReadError`), which is the generator's fault, not the server's. Clients do the same
# (httpx's and aiohttp's keep-alive expiry).
KEEPALIVE_EXPIRY_S = 2.0


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def reusable(self, now: float) -> bool:
        return now - self.idle_since < KEEPALIVE_EXPIRY_S and not self.reader.at_eof()

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send one request, read one response: (status, body, keep-alive)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        keep_alive = True
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                keep_alive = False
        body = await self.reader.readexactly(length) if length else b""
        return status, body, keep_alive

    def close(self) -> None:
        self.writer.close()


def http_request(
    method: str, path: str, port: int, headers: dict[str, str], body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def open_loop(
    port: int,
    rate: float,
    seconds: float,
    request: Callable[[int], bytes],
    *,
    ok_status: int = 200,
    keep_bodies: bool = False,
    max_connections: int = 512,
    timeout_s: float = 10.0,
) -> LoadResult:
    """Offer `rate` requests/s for `seconds`; `request(i)` gives the bytes of request i."""
    loop = asyncio.get_running_loop()
    total = int(rate * seconds)
    result = LoadResult(rate, seconds, total, 0)
    idle: list[_Connection] = []
    opened = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int, due: float) -> None:
        nonlocal opened
        result.send_lags_ms.append((loop.time() - due) * 1000)
        conn: _Connection | None = None
        while idle and conn is None:
            conn = idle.pop()  # the most recently used first
            if not conn.reusable(loop.time()):
                conn.close()
                opened -= 1
                conn = None
        if conn is None:
            if opened >= max_connections:
                result.errors["no free connection"] += 1
                return
            opened += 1
            try:
                conn = _Connection(*await asyncio.open_connection("127.0.0.1", port))
            except OSError as exc:
                opened -= 1
                result.errors[f"connect: {type(exc).__name__}"] += 1
                return
        try:
            async with asyncio.timeout(timeout_s):
                status, body, keep_alive = await conn.exchange(request(i))
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            conn.close()
            opened -= 1
            result.errors[type(exc).__name__] += 1
            return
        result.latencies_ms.append((loop.time() - due) * 1000)
        if status == ok_status:
            result.ok += 1
            if keep_bodies:
                result.bodies.append(body)
        else:
            result.errors[f"HTTP {status}"] += 1
        if keep_alive:
            conn.idle_since = loop.time()
            idle.append(conn)
        else:
            conn.close()
            opened -= 1

    started = loop.time() + 0.05
    i = 0
    while i < total:
        now = loop.time()
        while i < total and started + i / rate <= now:
            task = asyncio.create_task(one(i, started + i / rate))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        if i < total:
            await asyncio.sleep(max(0.0, started + i / rate - loop.time()))
    if tasks:
        await asyncio.wait(set(tasks), timeout=timeout_s + 1)
    for conn in idle:
        conn.close()
    return result


def run(coro_factory: Callable[[], object]) -> object:
    """asyncio.run with uvloop when installed (it keeps the generator's own cost low)."""
    try:
        import uvloop

        return uvloop.run(coro_factory())  # type: ignore[arg-type]
    except ImportError:
        return asyncio.run(coro_factory())  # type: ignore[arg-type]
