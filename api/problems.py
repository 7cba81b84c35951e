"""Every error as RFC 9457 `application/problem+json`, mapped in this one place.

The type is always `about:blank`, so the title is the status's own (RFC 9457 section 4.2.1): one title per kind
of problem, whatever raised it; `detail` says what, and `errors` names each field of an invalid request. The
OpenAPI document declares the same: `responses(...)` gives a route its statuses with the `Problem` schema.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
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


TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    422: "Invalid request",
    500: "Internal error",
    502: "Bad gateway",
    503: "Service unavailable",
}
MEANINGS = {
    400: "the request cannot be read (for example a NUL character)",
    401: "no valid API key: `Authorization: Bearer <key>`",
    403: "the key's role (or its facility scope) may not do this",
    404: "no such resource, or one outside the key's facilities",
    405: "the path does not take this method; `Allow` lists those it takes",
    409: "the episode's state does not allow the command; `detail` says why",
    413: "the body is larger than the limit",
    422: "an invalid request; `detail` and `errors` name the field",
    500: "an unexpected error, logged without its payload",
    502: "the workflow service refused the request",
    503: "Temporal or PostgreSQL unavailable; retry after `Retry-After` seconds",
}


def title_of(status: int) -> str:
    return TITLES.get(status, "Error")


class FieldError(BaseModel):
    field: str = Field(description="the field, dotted (`assessment.ratings.0.dimension`), or `body`")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every error is answered."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", examples=["about:blank"])
    title: str = Field(description="the status's title: one per kind of problem", examples=["Not found"])
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="what went wrong, without echoing values that should not be shown")
    errors: list[FieldError] | None = Field(None, description="each invalid field (422 only)")


PROBLEM_MEDIA = "application/problem+json"


# The headers an error always carries (`install` below, and api/app.py for a request cut short by a shutdown).
HEADERS = {
    401: {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string", "const": "Bearer"}}},
    503: {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route's errors: each status with its meaning, the `Problem` schema and the
    headers it always carries."""
    return {status: _response(status) for status in statuses}


def _response(status: int) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": MEANINGS[status],
        "content": {PROBLEM_MEDIA: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status in HEADERS:
        answer["headers"] = HEADERS[status]
    return answer


def document(app: FastAPI) -> None:
    """Completes the OpenAPI document's errors, so no route can leave one out: every route that takes a key may
    answer 401, 403 and 503, one with a path parameter 404, one with parameters or a body 422, each with the
    `Problem` schema (FastAPI's own 422 schema, which no answer has, is replaced)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas["FieldError"] = schemas["Problem"].pop("$defs")["FieldError"]
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                _complete(operation)
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _complete(operation: dict[str, Any]) -> None:
    answers = operation.setdefault("responses", {})
    parameters = operation.get("parameters", [])
    statuses: list[int] = []
    if operation.get("security"):
        statuses += AUTHENTICATED
    if any(p.get("in") == "path" for p in parameters):
        statuses.append(404)
    if parameters or "requestBody" in operation:
        statuses += (400, 422)  # 400: a NUL character anywhere (api/hygiene.py)
    if "requestBody" in operation:
        statuses.append(413)
    for status, answer in responses(*statuses).items():
        declared = answers.get(str(status))
        if declared is None or "HTTPValidationError" in str(declared.get("content", "")):
            answers[str(status)] = answer


# What every authenticated route may answer besides its own; reads add 404 and 422 where they take parameters.
AUTHENTICATED = (401, 403, 503)
READ_ERRORS = responses(*AUTHENTICATED, 404, 422)
COMMAND_ERRORS = responses(*AUTHENTICATED, 404, 409, 413, 422)


def problem_body(status: int, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": "about:blank", "title": title_of(status), "status": status, "detail": detail, **extra}


def problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
    body = problem_body(status, detail, **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA, headers=headers)


def _field(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location if part != "body") or "body"


def install(app: FastAPI) -> None:
    document(app)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(tuple(e["loc"])), "message": e["msg"]} for e in error.errors()]
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        log_refused(request, 422, f"invalid {first['field']}")
        return problem(422, f"{first['field']}: {first['message']}", errors=errors)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        if error.status_code in (401, 403, 413, 422):
            log_refused(request, error.status_code, title_of(error.status_code))
        response = problem(error.status_code, str(error.detail))
        if error.status_code == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(CommandInvalid)
    async def invalid_command(request: Request, error: CommandInvalid) -> JSONResponse:
        log_refused(request, 422, "command invalid")
        return problem(422, str(error))

    @app.exception_handler(CommandRejected)
    async def rejected(request: Request, error: CommandRejected) -> JSONResponse:
        log_refused(request, 409, "command rejected")
        return problem(409, str(error))

    @app.exception_handler(CommandUnrecordable)
    async def unrecordable(request: Request, error: CommandUnrecordable) -> JSONResponse:
        log_refused(request, 422, "command unrecordable")
        return problem(422, UNRECORDABLE_DETAIL)

    @app.exception_handler(UnknownEventType)
    async def unknown_event(request: Request, error: UnknownEventType) -> JSONResponse:
        log.error("api.unknown_event_type", path=request.url.path)
        return problem(500, f"{error}; this version cannot read the record")

    @app.exception_handler(UnknownEpisode)
    async def unknown(request: Request, error: UnknownEpisode) -> JSONResponse:
        return problem(404, str(error))

    @app.exception_handler(InvalidIdentifier)
    async def bad_id(request: Request, error: InvalidIdentifier) -> JSONResponse:
        return problem(422, str(error))

    @app.exception_handler(PolicyError)
    async def bad_policy(request: Request, error: PolicyError) -> JSONResponse:
        return problem(500, str(error))

    async def unavailable(request: Request, error: Exception) -> JSONResponse:
        log.warning("api.dependency_unavailable", error_type=type(error).__name__, path=request.url.path)
        return problem(503, "Temporal or PostgreSQL is unavailable; retry shortly")

    for kind in (StoreUnavailable, StoreBusy, ServerUnavailable, OperationalError):
        app.add_exception_handler(kind, unavailable)

    async def timed_out(request: Request, error: Exception) -> JSONResponse:
        log.warning("api.dependency_timed_out", error_type=type(error).__name__, path=request.url.path)
        return problem(503, "Temporal did not answer in time; retry (with the same Idempotency-Key)")

    for slow in (ServerTimedOut, RPCTimeoutOrCancelledError):
        app.add_exception_handler(slow, timed_out)

    @app.exception_handler(RPCError)
    async def temporal_error(request: Request, error: RPCError) -> JSONResponse:
        if error.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            return await timed_out(request, error)
        if error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.RESOURCE_EXHAUSTED):
            return await unavailable(request, error)
        log.error("api.temporal_error", status=error.status.name, path=request.url.path)
        return problem(502, "the workflow service refused the request")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.error("api.unexpected_error", error_type=type(error).__name__, path=request.url.path)
        return problem(500, "an unexpected error occurred; it has been logged without its payload")
