"""`create_app(services)`: the FastAPI application, with problem+json errors and a body limit."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api import commands, dashboard, problems, reads
from api.limits import BodyLimit
from api.services import Services


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="Continuum",
        version="1",
        summary="Care-continuum workflow engine: commands for other services, reads for directors and auditors.",
        openapi_url="/openapi.json",
    )
    app.state.services = services
    problems.install(app)
    app.include_router(commands.router)
    app.include_router(reads.router)
    dashboard.install(app)
    app.add_middleware(BodyLimit)

    @app.get("/healthz", tags=["health"])
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
        return JSONResponse({"status": "ok" if healthy else "degraded", **checks}, 200 if healthy else 503, headers=headers)

    return app


def _ping(services: Services) -> None:
    with services.store.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
