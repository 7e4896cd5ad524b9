"""The connection that hears the relays' announcements comes back after PostgreSQL drops it
(a restart by the supervisor ends every backend): resting engines are woken by NOTIFY again,
and once at reconnection, since what was announced meanwhile was heard by no one."""

from __future__ import annotations

import asyncio

import asyncpg

from orderguard.shared.engine.idle import Wakeups
from orderguard.shared.outbox import PUBLISHED_CHANNEL
from orderguard.shared.settings import Settings


async def test_a_dropped_listen_connection_is_opened_again_and_wakes_the_engines(
    settings: Settings,
) -> None:
    wakeups = Wakeups(reconnect_after_s=0.05)
    await wakeups.start(settings.database_url)
    inventory = wakeups.watch(["inventory.events"])
    admin = await asyncpg.connect(settings.database_url)
    try:
        listening_pid = wakeups._conn.get_server_pid()  # type: ignore[union-attr]
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", listening_pid)

        await asyncio.wait_for(inventory.wait(), timeout=10)  # woken once, on reconnection
        assert wakeups.listening
        assert wakeups._conn.get_server_pid() != listening_pid  # type: ignore[union-attr]

        inventory.clear()
        await admin.execute("SELECT pg_notify($1, $2)", PUBLISHED_CHANNEL, "inventory.events")
        await asyncio.wait_for(inventory.wait(), timeout=10)
    finally:
        await admin.close()
        await wakeups.close()
    assert not wakeups.listening
