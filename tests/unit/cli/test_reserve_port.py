"""A reserved port is ours between a server's crash and its restart: nobody else gets it."""

from __future__ import annotations

import asyncio
import socket

import pytest

from orderguard.cli.embedded import reserve_port


def _bind(port: int) -> None:
    """What another program probing for a free port does."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


async def _serve_once(port: int) -> None:
    """Our server binding the reserved port (asyncio, uvicorn and Tansu set SO_REUSEADDR)."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    async with server:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()


def test_a_reserved_port_is_taken_for_others_but_not_for_our_server() -> None:
    with reserve_port() as reservation:
        port = reservation.getsockname()[1]
        with pytest.raises(OSError):
            _bind(port)
        for _ in range(2):  # started, crashed, started again on the same port
            asyncio.run(_serve_once(port))
            with pytest.raises(OSError):
                _bind(port)


def test_a_taken_preferred_port_gives_another() -> None:
    with reserve_port() as first, reserve_port(first.getsockname()[1]) as second:
        assert second.getsockname()[1] != first.getsockname()[1]
