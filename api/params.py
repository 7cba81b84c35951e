"""Request plumbing shared by the routes: the services on the app, and id path parameters."""

from __future__ import annotations

from typing import Any

from fastapi import Path, Request

from api.services import Services

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"


def services_of(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def IdPath() -> Any:  # noqa: N802 (a fresh Path per parameter: one shared instance binds them all to one name)
    return Path(pattern=ID_PATTERN)
