"""The FastAPI app factory: health, readiness, metrics, event schemas, problem+json, RED metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry.trace import SpanKind
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orderguard.shared import metrics, telemetry
from orderguard.shared.http.limits import BodyLimit
from orderguard.shared.http.openapi import install_openapi
from orderguard.shared.http.problems import install_problem_handlers
from orderguard.shared.settings import Settings
from orderguard.shared.tracing import child_of, span_id, take_parent, traced

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]


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
    )
    app.state.settings = settings
    install_problem_handlers(app)
    app.add_middleware(BodyLimit, other_types_max_bytes=settings.aftersales_attachment_max_bytes)

    @app.middleware("http")
    async def trace_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        traceparent = child_of(request.headers.get("traceparent"))
        started = telemetry.now_ns()
        with traced(traceparent):
            response = await call_next(request)
        response.headers["traceparent"] = traceparent
        if telemetry.enabled():
            route = getattr(request.scope.get("route"), "path", "unmatched")
            telemetry.record(
                f"{request.method} {route}",
                SpanKind.SERVER,
                traceparent,
                take_parent(span_id(traceparent) or ""),
                started,
                telemetry.now_ns(),
                {
                    "http.request.method": request.method,
                    "http.route": route,
                    "http.response.status_code": response.status_code,
                },
                error=f"HTTP {response.status_code}" if response.status_code >= 500 else None,
            )
        return response

    @app.middleware("http")
    async def red_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            # The route template keeps the label bounded; unknown paths share one value.
            template = getattr(route, "path", "<unmatched>")
            metrics.HTTP_REQUESTS.labels(service, template, request.method, str(status)).inc()
            metrics.HTTP_DURATION.labels(service, template, request.method).observe(
                time.perf_counter() - started
            )

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
