"""How a long-running loop pauses: for a while, or until it is told to stop, whichever comes
first (the outbox relay's polls and linger, an engine's linger, the scheduled jobs' periods)."""

from __future__ import annotations

import asyncio


async def stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`; True when stop was set meanwhile (at once, then)."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
        return True
    except TimeoutError:
        return False
