"""OpenTelemetry span export, off unless `otel_exporter_otlp_endpoint` is set.

Trace context is ours (`tracing.py`: W3C traceparent in HTTP headers, envelopes and Kafka
headers), so the ids in logs, events and exported spans are the same ones. This module only
records finished spans with those ids and hands them to the OTLP/HTTP exporter in batches:

- an HTTP request: a SERVER span, child of the caller's traceparent;
- an event published by a consumer or detector (its traceparent made by `child_of` from the
  event that caused it): a PRODUCER span, child of the cause;
- an event applied by the engine: a CONSUMER span, child of the event's span.

Only sampled traces (W3C flag 01) are exported; a collector can sample further.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from orderguard.shared import tracing
from orderguard.shared.logging import get_logger
from orderguard.shared.settings import Settings

log = get_logger(__name__)

_processor: BatchSpanProcessor | None = None
_resource: Resource | None = None

Attributes = Mapping[str, str | int | float | bool]


def configure(settings: Settings, service: str, role: str) -> None:
    """Start exporting when configured; otherwise do nothing (and cost nothing)."""
    global _processor, _resource
    endpoint = settings.otel_exporter_otlp_endpoint
    if not endpoint:
        return
    _resource = Resource.create(
        {
            "service.name": f"orderguard-{service}",
            "service.namespace": "orderguard",
            "service.version": "0.1.0",
            "orderguard.role": role,
        }
    )
    _processor = BatchSpanProcessor(
        OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=5)
    )
    tracing.remember_parents(True)
    log.info("exporting spans over OTLP/HTTP", service=service)  # the endpoint may hold a token


def enabled() -> bool:
    return _processor is not None


def shutdown() -> None:
    """Flush what is buffered (bounded by the exporter's timeout) and stop exporting."""
    global _processor
    if _processor is not None:
        _processor.shutdown()
        _processor = None
        tracing.remember_parents(False)


def now_ns() -> int:
    return time.time_ns()


def record(
    name: str,
    kind: SpanKind,
    traceparent: str | None,
    parent_span_id: str | None,
    start_ns: int,
    end_ns: int,
    attributes: Attributes | None = None,
    error: str | None = None,
) -> None:
    """Export one finished span whose ids are `traceparent`'s (no-op when disabled/unsampled)."""
    if _processor is None:
        return
    trace_id = tracing.trace_id(traceparent)
    own = tracing.span_id(traceparent)
    if trace_id is None or own is None or not traceparent or not traceparent.endswith("-01"):
        return
    flags = TraceFlags(TraceFlags.SAMPLED)
    span = ReadableSpan(
        name=name,
        context=SpanContext(int(trace_id, 16), int(own, 16), is_remote=False, trace_flags=flags),
        parent=(
            SpanContext(
                int(trace_id, 16), int(parent_span_id, 16), is_remote=True, trace_flags=flags
            )
            if parent_span_id
            else None
        ),
        resource=_resource,
        attributes=dict(attributes or {}),
        kind=kind,
        status=Status(StatusCode.ERROR, error) if error else Status(StatusCode.UNSET),
        start_time=start_ns,
        end_time=end_ns,
    )
    _processor.on_end(span)


def record_published(
    published: Iterable[tuple[str, str, str, str]], start_ns: int, end_ns: int
) -> None:
    """PRODUCER spans for (topic, event type, event id, traceparent) written to the outbox.

    An event that carries the work in progress's own span (an HTTP request's) has no span of
    its own; one made by `child_of` from its cause gets one, child of that cause."""
    if _processor is None:
        return
    current = tracing.span_id(tracing.current_traceparent())
    for topic, event_type, event_id, traceparent in published:
        own = tracing.span_id(traceparent)
        if own is None or own == current:
            continue
        record(
            f"publish {event_type}",
            SpanKind.PRODUCER,
            traceparent,
            tracing.take_parent(own),
            start_ns,
            end_ns,
            {
                "messaging.system": "kafka",
                "messaging.destination.name": topic,
                "messaging.message.id": event_id,
                "cloudevents.event_type": event_type,
            },
        )


def record_consumed(
    consumed: Iterable[tuple[str, str, str, str | None]], group: str, start_ns: int, end_ns: int
) -> None:
    """CONSUMER spans for (topic, event type, event id, traceparent) applied in one batch."""
    if _processor is None:
        return
    for topic, event_type, event_id, traceparent in consumed:
        parent = tracing.span_id(traceparent)
        if parent is None or tracing.trace_id(traceparent) is None:
            continue
        own = f"00-{tracing.trace_id(traceparent)}-{secrets.token_hex(8)}-{traceparent[-2:]}"  # type: ignore[index]
        record(
            f"process {event_type}",
            SpanKind.CONSUMER,
            own,
            parent,
            start_ns,
            end_ns,
            {
                "messaging.system": "kafka",
                "messaging.source.name": topic,
                "messaging.consumer.group.name": group,
                "messaging.message.id": event_id,
                "cloudevents.event_type": event_type,
            },
        )
