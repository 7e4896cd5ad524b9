"""With an OTLP endpoint configured, an order's trace reaches a real OTLP/HTTP receiver as
linked spans with the same ids our events carry: the HTTP request (SERVER), the order placed
and applied by inventory (CONSUMER), inventory's reply published (PRODUCER) and applied by
the order service (CONSUMER)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from testkit import ORDER_BODY, wait_until

from orderguard.services.inventory.bootstrap import DEFINITION as INVENTORY
from orderguard.services.order.bootstrap import DEFINITION as ORDER
from orderguard.shared import telemetry
from orderguard.shared.settings import Settings

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
INCOMING = f"00-{TRACE}-{CALLER_SPAN}-01"


class Receiver(BaseHTTPRequestHandler):
    spans: list[dict[str, str]] = []  # noqa: RUF012 (filled by the server thread)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            service = next(
                a.value.string_value
                for a in resource.resource.attributes
                if a.key == "service.name"
            )
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.spans.append(
                        {
                            "service": service,
                            "name": span.name,
                            "trace": span.trace_id.hex(),
                            "span": span.span_id.hex(),
                            "parent": span.parent_span_id.hex(),
                        }
                    )
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export every 100 ms, not 5 s
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Receiver.spans = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        telemetry.shutdown()
        server.shutdown()


async def test_an_orders_trace_is_exported_as_linked_spans(
    settings: Settings,
    start_service,  # type: ignore[no-untyped-def]
    collector: str,
) -> None:
    telemetry.configure(
        settings.model_copy(update={"otel_exporter_otlp_endpoint": collector}), "test", "api"
    )
    order = await start_service(ORDER)
    inventory = await start_service(INVENTORY)
    await inventory.client.put("/stock/SKU-E2E/main", json={"on_hand": 10})
    await inventory.wait_assigned()
    await order.wait_assigned()

    response = await order.client.post(
        "/orders", json=ORDER_BODY, headers={"traceparent": INCOMING}
    )
    assert response.status_code == 201, response.text

    def named(name: str) -> list[dict[str, str]]:
        return [s for s in Receiver.spans if s["trace"] == TRACE and s["name"] == name]

    async def whole_trace() -> bool:
        return bool(named("process inventory.reserved.v1"))

    await wait_until(whole_trace, timeout=20, what="the order's spans at the collector")
    [server] = named("POST /orders")
    assert server["parent"] == CALLER_SPAN
    assert server["span"] == response.headers["traceparent"].split("-")[2]
    # Every group that applies the order placed (inventory's reservations, the order detectors).
    applied = [s for s in named("process order.placed.v1") if s["parent"] == server["span"]]
    assert len(applied) == len(named("process order.placed.v1")) >= 1
    [reply] = named("publish inventory.reserved.v1")
    assert reply["parent"] == server["span"], "inventory's reply is a child of the order placed"
    [answered] = named("process inventory.reserved.v1")
    assert answered["parent"] == reply["span"]
    assert len({s["span"] for s in (server, *applied, reply, answered)}) == 3 + len(applied)
