"""HTTP hygiene at the door: a caller without a valid key is refused (401) before its body is read, and every
405 answer says in `Allow` which methods the path takes."""

from __future__ import annotations

from typing import Any

from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from continuum.api.auth import authenticated

# The order methods are listed in, as RFC 9110 lists them.
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class AuthenticatedFirst:
    """Authenticate before FastAPI reads the body of a route that needs a key.

    FastAPI parses a JSON body before it solves a route's dependencies, so a malformed body without a key would
    answer 422 (and tell a stranger about the body's form). Routes without a body already authenticate first.
    Every answer on its way out gets `Allow` if it is a 405.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._needs_key: dict[int, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        routes = list(iter_route_contexts(scope["app"].routes))  # included routers' routes, as the router sees them
        route = next((r.original_route for r in routes if r.matches(scope)[0] is Match.FULL), None)
        if isinstance(route, APIRoute) and route.body_field is not None and self._key_required(route):
            request = Request(scope)
            try:
                await run_in_threadpool(authenticated, request)
            except HTTPException as error:  # answered as any 401 is: problem+json, WWW-Authenticate, logged
                response = await _handler(scope["app"], error)(request, error)
                await response(scope, receive, send)
                return

        arrived = dict(scope)  # routing rewrites the scope's paths on the way in (a mount's root_path)

        async def with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                if allowed := _allowed_methods(routes, arrived):
                    MutableHeaders(scope=message)["Allow"] = ", ".join(allowed)
            await send(message)

        await self.app(scope, receive, with_allow)

    def _key_required(self, route: APIRoute) -> bool:
        if id(route) not in self._needs_key:
            self._needs_key[id(route)] = _depends_on_authenticated(route.dependant)
        return self._needs_key[id(route)]


def _depends_on_authenticated(dependant: Dependant) -> bool:
    return any(d.call is authenticated or _depends_on_authenticated(d) for d in dependant.dependencies)


def _handler(app: Any, error: HTTPException) -> Any:
    """The app's own handler for the error (problems.install), found by its class as Starlette finds it."""
    handlers: dict[Any, Any] = app.exception_handlers
    return next(handlers[kind] for kind in type(error).__mro__ if kind in handlers)


def _allowed_methods(routes: list[RouteContext], scope: Scope) -> list[str]:
    """Every method of every route whose path matches (one path is often several routes, one per method)."""
    methods: set[str] = set()
    for route in routes:
        if route.matches(scope)[0] is Match.NONE:
            continue
        original = route.original_route
        if isinstance(original, Mount) and isinstance(original.app, StaticFiles):
            methods |= {"GET", "HEAD"}
        methods |= route.methods or set()
    return sorted(methods, key=lambda m: (_METHOD_ORDER.index(m) if m in _METHOD_ORDER else len(_METHOD_ORDER), m))
