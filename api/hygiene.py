"""HTTP hygiene at the door: a caller without a valid key is refused (401) before its body is read, and every
405 answer says in `Allow` which methods the path takes."""

from __future__ import annotations

import re
import time
import weakref
from typing import Any

import structlog
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from continuum.api.auth import authenticated

_log = structlog.get_logger("continuum.api")

# The order methods are listed in, as RFC 9110 lists them.
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})  # FastAPI reads no body for these: its dependencies run first


class HttpHygiene:
    """Authentication before the body, and `Allow` on every 405.

    FastAPI parses a JSON body before it solves a route's dependencies, so a malformed body without a key would
    answer 422 (telling a stranger about the body's form): a route that needs a key and takes a body is
    authenticated here first, by the routes' own dependency (`api.auth.authenticated`), and refused by the app's
    own 401. Routes without a body already authenticate first. A 405 on its way out gets the methods of every
    route on its path (Starlette names only the first route's).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = None if scope["method"] in _NO_BODY else _route(scope)
        if isinstance(route, APIRoute) and route.body_field is not None and _depends_on_authenticated(route.dependant):
            request = Request(scope)
            try:
                await authenticated(request)
            except HTTPException as error:  # answered as any 401 is: problem+json, WWW-Authenticate, logged
                response = await _handler(scope["app"], error)(request, error)
                await response(scope, receive, send)
                return

        arrived = dict(scope)  # routing rewrites the scope's paths on the way in (a mount's root_path)

        async def with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                if allowed := _allowed_methods(arrived):
                    MutableHeaders(scope=message)["Allow"] = ", ".join(allowed)
            await send(message)

        await self.app(scope, receive, with_allow)


_ROUTES: weakref.WeakKeyDictionary[Any, tuple[int, list[RouteContext]]] = weakref.WeakKeyDictionary()


def _routes(scope: Scope) -> list[RouteContext]:
    """The app's routes, included routers' among them, as its router tries them: listed once per app (and again
    if routes are added), not on every request (listing them was 2-3 % of the API's CPU per command)."""
    app = scope["app"]
    count = len(app.routes)
    known = _ROUTES.get(app)
    if known is None or known[0] != count:
        known = _ROUTES[app] = (count, list(iter_route_contexts(app.routes)))
    return known[1]


def _route(scope: Scope) -> BaseRoute | None:
    """The route that will answer the request (the first that matches path and method), if any."""
    return next((r.original_route for r in _routes(scope) if r.matches(scope)[0] is Match.FULL), None)


def _depends_on_authenticated(dependant: Dependant) -> bool:
    return any(d.call is authenticated or _depends_on_authenticated(d) for d in dependant.dependencies)


def _handler(app: Any, error: HTTPException) -> Any:
    """The app's own handler for the error (problems.install), found by its class as Starlette finds it."""
    handlers: dict[Any, Any] = app.exception_handlers
    return next(handlers[kind] for kind in type(error).__mro__ if kind in handlers)


def _allowed_methods(scope: Scope) -> list[str]:
    """Every method of every route whose path matches (one path is often several routes, one per method)."""
    methods: set[str] = set()
    for route in _routes(scope):
        if route.matches(scope)[0] is Match.NONE:
            continue
        original = route.original_route
        if isinstance(original, Mount) and isinstance(original.app, StaticFiles):
            methods |= {"GET", "HEAD"}
        methods |= route.methods or set()
    return sorted(methods, key=lambda m: (_METHOD_ORDER.index(m) if m in _METHOD_ORDER else len(_METHOD_ORDER), m))


_KEY_ID = re.compile(r"ck_(k_[0-9a-f]{12})_")  # a secret names its key id (access.ApiKeyStore.create)


class AccessLine:
    """One structured line per request: method, the route's template (never the path's ids or the query
    string, which may hold a name a director searched for), status, duration and the caller's key id (never
    its secret; for a dashboard page, its session's key). Uvicorn's own access log, which writes the whole
    query string, is off (bootstrap)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            authorization = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
            key = _KEY_ID.search(authorization)
            session = (scope.get("state") or {}).get("dashboard_session")  # a dashboard page's (api/dashboard.py)
            key_id = key.group(1) if key else session.key.key_id if session is not None else None
            _log.info(
                "api.request",
                method=scope.get("method"),
                route=getattr(route, "path", None) or "(no route)",
                status=status,
                duration_ms=round((time.perf_counter() - began) * 1000, 1),
                key_id=key_id,
            )
