"""Which relay a unit of work wakes in its own process instead of NOTIFYing (shared/outbox.py)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from orderguard.shared import outbox
from orderguard.shared.outbox import relay_leads_here, wake_relay_here


class Relay:
    woken = 0

    def wake(self) -> None:
        self.woken += 1


async def test_only_a_relay_leading_in_the_running_event_loop_is_woken_here() -> None:
    relay, ended = Relay(), asyncio.new_event_loop()
    ended.close()
    leading = cast(dict[str, Any], outbox._leading_here)
    try:
        # A relay of a loop that ended without stopping it: the commit must NOTIFY instead.
        leading["relayhere"] = (relay, ended)
        assert not relay_leads_here("relayhere")
        wake_relay_here("relayhere")
        assert relay.woken == 0

        leading["relayhere"] = (relay, asyncio.get_running_loop())
        assert relay_leads_here("relayhere")
        wake_relay_here("relayhere")
        assert relay.woken == 1
        assert not relay_leads_here("another schema")
    finally:
        leading.pop("relayhere", None)
