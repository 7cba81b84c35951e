"""Every error as RFC 9457 `application/problem+json`, mapped in this one place."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException
from temporalio.client import RPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from continuum.domain.errors import (
    CommandInvalid,
    CommandRejected,
    CommandUnrecordable,
    InvalidIdentifier,
    PolicyError,
    UnknownEpisode,
    UnknownEventType,
)
from continuum.eventlog.errors import StoreBusy, StoreUnavailable
from continuum.runtime.servers import ServerTimedOut, ServerUnavailable

log = structlog.get_logger(__name__)
RETRY_AFTER_SECONDS = 5
# A value the log cannot record is never echoed back: it may be the very thing that should not be shown.
UNRECORDABLE_DETAIL = "the command's values cannot be recorded"


def log_refused(request: Request, status: int, reason: str) -> None:
    """Every refused request is logged: method, path and why, never the body or the key."""
    log.warning("api.refused", status=status, method=request.method, path=request.url.path, reason=reason)


def problem_body(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
    body = problem_body(status, title, detail, **extra)
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def _field(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location if part != "body") or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(tuple(e["loc"])), "message": e["msg"]} for e in error.errors()]
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        log_refused(request, 422, f"invalid {first['field']}")
        return problem(422, "Invalid request", f"{first['field']}: {first['message']}", errors=errors)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        titles = {
            401: "Not authenticated",
            403: "Forbidden",
            404: "Not found",
            405: "Method not allowed",
            413: "Request too large",
            503: "Service unavailable",
        }
        if error.status_code in (401, 403, 413, 422):
            log_refused(request, error.status_code, titles.get(error.status_code, "refused"))
        response = problem(error.status_code, titles.get(error.status_code, "Error"), str(error.detail))
        if error.status_code == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(CommandInvalid)
    async def invalid_command(request: Request, error: CommandInvalid) -> JSONResponse:
        log_refused(request, 422, "command invalid")
        return problem(422, "Invalid command", str(error))

    @app.exception_handler(CommandRejected)
    async def rejected(request: Request, error: CommandRejected) -> JSONResponse:
        log_refused(request, 409, "command rejected")
        return problem(409, "Command rejected", str(error))

    @app.exception_handler(CommandUnrecordable)
    async def unrecordable(request: Request, error: CommandUnrecordable) -> JSONResponse:
        log_refused(request, 422, "command unrecordable")
        return problem(422, "Command unrecordable", UNRECORDABLE_DETAIL)

    @app.exception_handler(UnknownEventType)
    async def unknown_event(request: Request, error: UnknownEventType) -> JSONResponse:
        log.error("api.unknown_event_type", path=request.url.path)
        return problem(500, "Unreadable record", f"{error}; this version cannot read the record")

    @app.exception_handler(UnknownEpisode)
    async def unknown(request: Request, error: UnknownEpisode) -> JSONResponse:
        return problem(404, "Unknown episode", str(error))

    @app.exception_handler(InvalidIdentifier)
    async def bad_id(request: Request, error: InvalidIdentifier) -> JSONResponse:
        return problem(422, "Invalid identifier", str(error))

    @app.exception_handler(PolicyError)
    async def bad_policy(request: Request, error: PolicyError) -> JSONResponse:
        return problem(500, "Policy error", str(error))

    async def unavailable(request: Request, error: Exception) -> JSONResponse:
        log.warning("api.dependency_unavailable", error_type=type(error).__name__, path=request.url.path)
        return problem(503, "Service unavailable", "Temporal or PostgreSQL is unavailable; retry shortly")

    for kind in (StoreUnavailable, StoreBusy, ServerUnavailable, OperationalError):
        app.add_exception_handler(kind, unavailable)

    async def timed_out(request: Request, error: Exception) -> JSONResponse:
        log.warning("api.dependency_timed_out", error_type=type(error).__name__, path=request.url.path)
        return problem(
            503, "Service unavailable", "Temporal did not answer in time; retry (with the same Idempotency-Key)"
        )

    for slow in (ServerTimedOut, RPCTimeoutOrCancelledError):
        app.add_exception_handler(slow, timed_out)

    @app.exception_handler(RPCError)
    async def temporal_error(request: Request, error: RPCError) -> JSONResponse:
        if error.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            return await timed_out(request, error)
        if error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.RESOURCE_EXHAUSTED):
            return await unavailable(request, error)
        log.error("api.temporal_error", status=error.status.name, path=request.url.path)
        return problem(502, "Workflow service error", "the workflow service refused the request")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.error("api.unexpected_error", error_type=type(error).__name__, path=request.url.path)
        return problem(500, "Internal error", "an unexpected error occurred; it has been logged without its payload")
