"""The FastAPI app factory: health, readiness, metrics, event schemas, problem+json, RED metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from opentelemetry.trace import SpanKind
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderguard.shared import metrics, telemetry
from orderguard.shared.http.limits import AdmissionGate, BodyLimit
from orderguard.shared.http.openapi import install_openapi
from orderguard.shared.http.problems import install_problem_handlers
from orderguard.shared.settings import Settings
from orderguard.shared.tracing import child_of, span_id, take_parent, traced

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]


class ObserveRequests:
    """Per request: the trace context (a child of the caller's `traceparent`, answered in the
    response's), the RED metrics by route template, and the server span when spans are exported.

    Plain ASGI: Starlette's `@app.middleware("http")` runs every request through an extra
    task and memory streams, a large share of a cheap request's cost (py-spy under load)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        # The metrics' children by (route template, method, status): `labels()` looks them up
        # under a lock on every call; as bounded as the labels themselves.
        self._recorders: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        started_ns = telemetry.now_ns()
        incoming = next(
            (value.decode("latin-1") for name, value in scope["headers"] if name == b"traceparent"),
            None,
        )
        traceparent = child_of(incoming)
        status = 500  # unless the app answers: an exception escaping it becomes a 500

        async def send_traced(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", ()) if h[0] != b"traceparent"]
                headers.append((b"traceparent", traceparent.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            with traced(traceparent):
                await self.app(scope, receive, send_traced)
        finally:
            # The router left the matched route in the scope; its template keeps labels bounded.
            route = getattr(scope.get("route"), "path", None)
            method = scope["method"]
            template = route or "<unmatched>"
            recorders = self._recorders.get((template, method, status))
            if recorders is None:
                recorders = self._recorders[(template, method, status)] = (
                    metrics.HTTP_REQUESTS.labels(self.service, template, method, str(status)),
                    metrics.HTTP_DURATION.labels(self.service, template, method),
                )
            requests, duration = recorders
            requests.inc()
            duration.observe(time.perf_counter() - started)
            if telemetry.enabled():
                telemetry.record(
                    f"{method} {route or 'unmatched'}",
                    SpanKind.SERVER,
                    traceparent,
                    take_parent(span_id(traceparent) or ""),
                    started_ns,
                    telemetry.now_ns(),
                    {
                        "http.request.method": method,
                        "http.route": route or "unmatched",
                        "http.response.status_code": status,
                    },
                    error=f"HTTP {status}" if status >= 500 else None,
                )


def create_app(
    service: str,
    settings: Settings,
    readiness: ReadinessCheck,
    routers: Sequence[APIRouter] = (),
    version: str = "0.1.0",
) -> FastAPI:
    app = FastAPI(
        title=f"orderguard {service}",
        version=version,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        # Spans and RED metrics are ours (ObserveRequests, shared/telemetry.py). FastAPI's own
        # OpenTelemetry hook would otherwise look up the global providers on every request
        # (8% of a POST /orders under load, py-spy) to find them unconfigured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    install_problem_handlers(app)
    app.add_middleware(BodyLimit, other_types_max_bytes=settings.upload_max_bytes(service))
    app.add_middleware(
        AdmissionGate,
        max_in_flight=settings.http_max_in_flight,
        ungated=frozenset({"/healthz", "/readyz", "/metrics"}),
    )

    app.add_middleware(ObserveRequests, service=service)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers. Depends on nothing else."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["ops"],
        responses={
            503: {
                "description": "Not ready: a check failed (the body says which)",
                "content": {"application/json": {}},
            }
        },
    )
    async def readyz() -> JSONResponse:
        """Readiness: the database and the broker answer, and the workers have started."""
        checks = await readiness()
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.get(
        "/metrics",
        tags=["ops"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
    )
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # The public contract: every service serves the schema of every event type.
    # Imported here, not at the top: the contract's routes import shared.http, which imports us.
    from orderguard.shared.contract.routes import build_schema_router

    app.include_router(build_schema_router())
    for router in routers:
        app.include_router(router)
    install_openapi(app)
    return app
