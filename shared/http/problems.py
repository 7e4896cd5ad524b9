"""RFC 9457 problem details for every error a client can see."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from orderguard.shared.errors import (
    Conflict,
    DomainError,
    Forbidden,
    IllegalTransition,
    Invalid,
    NotFound,
)
from orderguard.shared.http.responses import JSONBody
from orderguard.shared.logging import get_logger

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://orderguard.dev/problems/"

log = get_logger(__name__)

# The one place the domain's error vocabulary (shared/errors.py) becomes HTTP statuses.
STATUS_OF_ERROR: tuple[tuple[type[DomainError], int], ...] = (
    (NotFound, 404),
    (IllegalTransition, 409),
    (Conflict, 409),
    (Invalid, 422),
    (Forbidden, 403),
)


class Problem(Exception):
    """A domain error a handler raises; rendered as problem+json with its status."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.headers = headers or {}
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.extra = extra


def problem_response(
    request: Request, status: int, slug: str, title: str, detail: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body["instance"] = request.url.path
    body.update(extra)
    return JSONBody(body, status_code=status, media_type=PROBLEM_JSON)


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for err in exc.errors():
        location = [str(part) for part in err.get("loc", ())]
        errors.append(
            {
                # "body.lines.0.quantity" -> a client can point at the exact field
                "field": ".".join(location),
                "message": err.get("msg", "invalid"),
                "code": err.get("type", "invalid"),
            }
        )
    return errors


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        response = problem_response(
            request, exc.status, exc.slug, exc.title, exc.detail, **exc.extra
        )
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(DomainError)
    async def _refused(request: Request, exc: DomainError) -> JSONResponse:
        status = next((code for kind, code in STATUS_OF_ERROR if isinstance(exc, kind)), 400)
        return problem_response(request, status, exc.slug, exc.title, exc.detail, **exc.details)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(
            request,
            422,
            "validation",
            "Request is invalid",
            "See errors for each field.",
            errors=_field_errors(exc),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = problem_response(
            request, exc.status_code, f"http-{exc.status_code}", str(exc.detail)
        )
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path)
        return problem_response(request, 500, "internal", "Internal error", "The error was logged.")
