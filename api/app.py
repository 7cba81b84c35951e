"""`create_app(services)`: the FastAPI application, with problem+json errors, a body limit, requests that a
shutdown cancels answered 503 quietly, and `/docs` served offline (Swagger UI's assets from the
`swagger-ui-bundle-v2` package, never a CDN)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from continuum.api import (
    attendance,
    codec,
    commands,
    dashboard,
    hygiene,
    measures,
    measures_page,
    policy,
    problems,
    reads,
    simulations,
    utilization,
)
from continuum.api.auth import EPISODE_SCOPE
from continuum.api.feed import router as feed_router
from continuum.api.limits import BodyLimit
from continuum.api.service_models import Health
from continuum.api.services import Services
from continuum.api.webhooks import router as webhooks_router

log = structlog.get_logger(__name__)


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="Continuum",
        version="1",
        summary="Care-continuum workflow engine: commands for other services, reads for directors and auditors.",
        openapi_url="/openapi.json",
        docs_url=None,  # served below from the packaged assets
        redoc_url=None,
    )
    app.state.services = services
    problems.install(app)
    # An episode outside the caller's facilities is answered as if it did not exist, on every episode route.
    app.include_router(commands.router, dependencies=[EPISODE_SCOPE])
    app.include_router(attendance.router, dependencies=[EPISODE_SCOPE])
    app.include_router(reads.router, dependencies=[EPISODE_SCOPE])
    app.include_router(codec.router)
    app.include_router(policy.router)
    app.include_router(measures.router)
    app.include_router(simulations.router)
    app.include_router(feed_router)
    app.include_router(utilization.router, dependencies=[EPISODE_SCOPE])
    app.include_router(webhooks_router)
    measures_page.register()  # on the dashboard's router, before it is mounted
    dashboard.install(app)
    _install_docs(app)
    app.add_middleware(BodyLimit)
    app.add_middleware(CancelledQuietly)
    app.add_middleware(hygiene.HttpHygiene)
    app.add_middleware(hygiene.AccessLine)  # outermost: it sees every answer, the refusals too

    @app.get("/healthz", tags=["health"], response_class=JSONResponse, responses=HEALTH)
    async def healthz(request: Request) -> JSONResponse:
        """Whether Temporal and PostgreSQL answer (no key needed; no data disclosed)."""
        checks: dict[str, Any] = {"temporal": "ok", "postgres": "ok"}
        try:
            await asyncio.wait_for(services.episodes.client.service_client.check_health(), timeout=3)
        except Exception:
            checks["temporal"] = "unavailable"
        try:
            await run_in_threadpool(_ping, services)
        except Exception:
            checks["postgres"] = "unavailable"
        healthy = all(v == "ok" for v in checks.values())
        headers = None if healthy else {"Retry-After": str(problems.RETRY_AFTER_SECONDS)}
        return JSONResponse(
            {"status": "ok" if healthy else "degraded", **checks}, 200 if healthy else 503, headers=headers
        )

    return app


HEALTH: dict[int | str, dict[str, Any]] = {
    200: {"model": Health, "description": "Temporal and PostgreSQL answer"},
    503: {
        "model": Health,
        "description": "one of them does not answer (`degraded`); retry after `Retry-After` seconds",
        "headers": problems.HEADERS[503],
    },
}
DOCS_ASSETS = "/docs/assets"


def _install_docs(app: FastAPI) -> None:
    """Swagger UI at `/docs`, its script and style served by the app itself, so the page works offline."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Continuum API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )


def _ping(services: Services) -> None:
    with services.store.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


class CancelledQuietly:
    """A request cancelled by a shutdown (the server's grace period is over) answers 503 with Retry-After,
    if it has not begun to answer, and logs one line instead of a traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:  # nothing awaits this request any more: answer if we can, then end it
            log.info("api.cancelled_at_shutdown", method=scope.get("method"), path=scope.get("path"))
            if not started:
                with contextlib.suppress(Exception):
                    await _answer_unavailable(send)


async def _answer_unavailable(send: Send) -> None:
    body = json.dumps(problems.problem_body(503, "the server is stopping; retry shortly")).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(problems.RETRY_AFTER_SECONDS).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
