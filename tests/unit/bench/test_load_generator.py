"""The open-loop generator of `make bench` (bench/load.py): a keep-alive connection the server
has closed is not reused, so a server that closes idle connections (uvicorn after 5 s) is not
charged with errors that are the generator's."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"


def load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_load", BENCH / "load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def closing_idle_server(idle_close_s: float) -> tuple[asyncio.Server, int, list[int]]:
    """An HTTP/1.1 server that answers 200 with keep-alive and closes a connection idle for
    `idle_close_s`; the list counts the connections it accepted."""
    accepted: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            while True:
                try:
                    async with asyncio.timeout(idle_close_s):
                        await reader.readuntil(b"\r\n\r\n")
                except TimeoutError:
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], accepted


async def four_requests(load: ModuleType, idle_close_s: float) -> tuple[Any, int]:
    """Four requests 0.5 s apart on such a server: the result and the connections it accepted."""
    server, port, accepted = await closing_idle_server(idle_close_s)
    async with server:
        result = await load.open_loop(
            port, rate=2, seconds=2, request=lambda i: load.http_request("GET", "/", port, {})
        )
    return result, len(accepted)


async def test_a_connection_the_server_closed_while_idle_is_replaced_not_reused() -> None:
    # The server closes a connection idle for 0.1 s: every request after the first finds its
    # connection closed.
    result, accepted = await four_requests(load_module(), idle_close_s=0.1)
    assert (result.sent, result.ok, dict(result.errors), accepted) == (4, 4, {}, 4)


async def test_a_connection_idle_past_the_expiry_is_not_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The server keeps connections open; the generator's own expiry retires them.
    load = load_module()
    monkeypatch.setattr(load, "KEEPALIVE_EXPIRY_S", 0.2)
    result, accepted = await four_requests(load, idle_close_s=30)
    assert (result.sent, result.ok, dict(result.errors), accepted) == (4, 4, {}, 4)
