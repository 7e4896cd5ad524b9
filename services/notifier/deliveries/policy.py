"""Delivery policy, pure: quiet hours, retry backoff, per-channel rate windows, dedup keys and
masking of contacts. No I/O; clocks and randomness come in as arguments."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import orjson

from orderguard.services.notifier.settings import QuietHours

STAFF_KINDS = frozenset({"team", "person"})


def quiet_until(
    now: datetime, quiet: QuietHours, recipient_kind: str, severity: str | None = None
) -> datetime | None:
    """When a message due `now` may go out, if quiet hours hold it back (None: send now).

    The window [start, end) is local time in `quiet.timezone` and may span midnight
    (22:00-08:00). Customers always wait; staff only when `quiet.staff`, and never for P1.
    """
    if not quiet.enabled or quiet.start == quiet.end:
        return None
    if recipient_kind in STAFF_KINDS and (not quiet.staff or severity == "P1"):
        return None
    zone = ZoneInfo(quiet.timezone)
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:
        inside = quiet.start <= clock < quiet.end
        end_day = local.date()
    else:  # across midnight: late evening waits for tomorrow's end, early morning for today's
        inside = clock >= quiet.start or clock < quiet.end
        end_day = local.date() + timedelta(days=1) if clock >= quiet.start else local.date()
    if not inside:
        return None
    # Built as a local wall time, so a DST shift on that day lands on the right instant.
    return datetime.combine(end_day, quiet.end, tzinfo=zone).astimezone(now.tzinfo)


def retry_delay_s(
    attempt: int,
    base_s: float,
    cap_s: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Delay before the try after `attempt` (1-based): exponential, capped, with "equal
    jitter" (half fixed, half random) so failed receivers are not hit in lockstep."""
    ceiling = min(cap_s, base_s * 2 ** (attempt - 1))
    return ceiling / 2 + rand() * ceiling / 2


def rate_window(now: datetime, window_s: float) -> tuple[datetime, datetime]:
    """The fixed window `now` falls in: [start, end), aligned to the epoch."""
    epoch = now.timestamp()
    start = math.floor(epoch / window_s) * window_s
    return (
        datetime.fromtimestamp(start, tz=now.tzinfo),
        datetime.fromtimestamp(start + window_s, tz=now.tzinfo),
    )


def admitted(limit: int | None, used: int, wanted: int) -> int:
    """How many of `wanted` sends fit in a window that has `used` of its `limit` (None: no limit)."""
    if limit is None:
        return wanted
    return max(0, min(wanted, limit - used))


def dedup_key(
    recipient_kind: str, recipient_id: str, channel: str, template: str, params: dict[str, str]
) -> str:
    """Same recipient, channel, template and params: the same message, whatever the request id."""
    material = orjson.dumps(
        [recipient_kind, recipient_id, channel, template, params], option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(material).hexdigest()


def mask_contact(contact: str | None) -> str | None:
    """13800138000 → 138****8000; li.lei@example.com → l*****@example.com."""
    if not contact:
        return None
    if "@" in contact:
        local, _, domain = contact.partition("@")
        return f"{local[:1]}{'*' * max(len(local) - 1, 1)}@{domain}"
    digits = contact.strip()
    if len(digits) <= 4:
        return "*" * len(digits)
    return f"{digits[:3]}{'*' * max(len(digits) - 7, 1)}{digits[-4:]}"
