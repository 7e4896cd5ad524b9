"""W3C trace context, carried from an HTTP request into the events it causes and on across services."""

from __future__ import annotations

import random
import re
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import structlog

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_current: ContextVar[str | None] = ContextVar("traceparent", default=None)
# Span id -> its parent's, for spans made by `child_of` while spans are exported
# (shared/telemetry.py): the exporter needs the parent when it records the span later.
_parents: OrderedDict[str, str] = OrderedDict()
_PARENTS_MAX = 65_536
_remember_parents = False


def remember_parents(enabled: bool) -> None:
    global _remember_parents
    _remember_parents = enabled
    _parents.clear()


def take_parent(span_id: str) -> str | None:
    """The parent span id `child_of` gave `span_id`, once (None when unknown or not kept)."""
    return _parents.pop(span_id, None)


def span_id(traceparent: str | None) -> str | None:
    match = _TRACEPARENT.match(traceparent or "")
    return match.group(2) if match else None


# Trace and span ids need to be unique, not secret (W3C trace context): the process's PRNG
# (seeded from the OS at start) spares every request the os.urandom calls.
def _hex_id(bits: int) -> str:
    return f"{random.getrandbits(bits):0{bits // 4}x}"


def new_traceparent() -> str:
    return f"00-{_hex_id(128)}-{_hex_id(64)}-01"


def trace_id(traceparent: str | None) -> str | None:
    match = _TRACEPARENT.match(traceparent or "")
    return match.group(1) if match and match.group(1) != "0" * 32 else None


def child_of(traceparent: str | None) -> str:
    """The traceparent of a new span in the same trace (a new trace if `traceparent` is unusable)."""
    match = _TRACEPARENT.match(traceparent or "")
    if match is None or trace_id(traceparent) is None:
        return new_traceparent()
    child = _hex_id(64)
    if _remember_parents:
        _parents[child] = match.group(2)
        if len(_parents) > _PARENTS_MAX:
            _parents.popitem(last=False)
    return f"00-{match.group(1)}-{child}-{match.group(3)}"


def current_traceparent() -> str | None:
    """The trace context of the work in progress: envelopes created now carry it."""
    return _current.get()


@contextmanager
def traced(traceparent: str) -> Iterator[None]:
    """Run a block in a trace context; its log lines carry the trace id."""
    token = _current.set(traceparent)
    # Reset by token, not with structlog's bound_contextvars: that one copies every context
    # variable on entry (a third of the per-request cost of shared/http/app.py's middleware).
    bound = structlog.contextvars.bind_contextvars(trace_id=trace_id(traceparent))
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**bound)
        _current.reset(token)
