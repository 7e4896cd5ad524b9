"""Which relay a unit of work wakes in its own process instead of NOTIFYing (shared/outbox.py)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from orderguard.shared import outbox
from orderguard.shared.outbox import relay_leading_here


async def test_only_a_relay_leading_in_the_running_event_loop_is_the_one_here() -> None:
    relay, ended = object(), asyncio.new_event_loop()
    ended.close()
    leading = cast(dict[str, Any], outbox._leading_here)
    try:
        # A relay of a loop that ended without stopping it: the commit must NOTIFY instead.
        leading["relayhere"] = (relay, ended)
        assert relay_leading_here("relayhere") is None

        leading["relayhere"] = (relay, asyncio.get_running_loop())
        assert relay_leading_here("relayhere") is relay
        assert relay_leading_here("another schema") is None
    finally:
        leading.pop("relayhere", None)
