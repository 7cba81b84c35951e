"""Request plumbing shared by the routes: the services on the app, id path parameters, instant queries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import HTTPException, Path, Request
from pydantic import AfterValidator, AwareDatetime

from continuum.access import ApiKey
from continuum.api.schemas import plausible_instant
from continuum.api.services import Services
from continuum.domain import ids

ID_PATTERN = f"^{ids.ID_PATTERN}$"  # the domain's id form, anchored for path and query parameters


def services_of(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def viewed_state(request: Request, caller: ApiKey, episode_id: str, view: str) -> dict[str, Any]:
    """The episode's state from the projection (404 if there is none), its reading recorded in the access log
    as `view` (folded with the same view by the same key shortly before)."""
    services = services_of(request)
    state = services.reads.get(episode_id)
    if state is None:
        raise HTTPException(404, f"no episode {episode_id}")
    services.access.record_view(caller, view, "operations", episode_id=episode_id)
    return state


def IdPath() -> Any:  # noqa: N802 (a fresh Path per parameter: one shared instance binds them all to one name)
    return Path(pattern=ID_PATTERN)


# An instant in a query (`as_of`, `since`, `until`): time-zone aware and plausible, or a 422 naming it.
InstantQuery = Annotated[AwareDatetime, AfterValidator(plausible_instant)]
