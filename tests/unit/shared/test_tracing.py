"""W3C traceparent handling: children keep the trace, bad input starts a new one."""

from __future__ import annotations

from orderguard.shared.envelope import Envelope
from orderguard.shared.tracing import child_of, current_traceparent, trace_id, traced

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_child_keeps_trace_id_and_flags_with_a_new_span() -> None:
    child = child_of(PARENT)
    assert trace_id(child) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert child.endswith("-01") and child != PARENT


def test_unusable_parent_starts_a_new_trace() -> None:
    for bad in (None, "", "garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", PARENT.upper()):
        child = child_of(bad)
        assert trace_id(child) is not None
        assert trace_id(child) != trace_id(PARENT)


def test_envelopes_created_in_a_trace_carry_it() -> None:
    assert current_traceparent() is None
    with traced(PARENT):
        inside = Envelope(type="t.v1", source="/s", subject="k", data={})
    outside = Envelope(type="t.v1", source="/s", subject="k", data={})
    assert inside.traceparent == PARENT
    assert outside.traceparent is None
