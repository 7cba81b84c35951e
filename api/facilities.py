"""Facilities at the HTTP edge: where an episode opens and is transferred to, the levels a facility cannot take
a client at now (counted from the projection when the command is accepted, and passed into it: the workflow
stays deterministic), and the census by facility with occupancy against capacity."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from continuum.access import ApiKey
from continuum.api.auth import facility_scope, sees_facility
from continuum.api.params import services_of
from continuum.domain.facilities import Facility
from continuum.domain.levels import LevelOfCare
from continuum.eventlog.reads import facility_census


def known_facility(request: Request, caller: ApiKey | None, facility_id: str | None) -> Facility:
    """The facility named (the default one if None): 422 naming `facility_id` if there is none; with `caller`,
    403 if it is outside the caller's facilities."""
    facilities = services_of(request).episodes.facilities
    chosen = facilities.get(facility_id or facilities.default_id)
    if chosen is None:
        raise HTTPException(422, f"facility_id: no facility {facility_id} (known: {', '.join(facilities.ids)})")
    if caller is not None and not sees_facility(caller, chosen.facility_id):
        raise HTTPException(403, f"facility_id: {chosen.facility_id} is outside this key's facilities")
    return chosen


async def unavailable_at(request: Request, facility: Facility) -> tuple[LevelOfCare, ...]:
    """The levels `facility` cannot take a client at now: not offered, or every bed or slot taken."""
    if _unlimited(facility):
        return ()  # no limit anywhere: nothing to count
    occupancy = await run_in_threadpool(services_of(request).reads.occupancy, facility.facility_id)
    return tuple(sorted(facility.unavailable(occupancy), key=lambda level: level.intensity))


def _unlimited(facility: Facility) -> bool:
    return not facility.capacity and len(facility.levels) == len(LevelOfCare)


async def unavailable_for_episode(request: Request, episode_id: str) -> tuple[LevelOfCare, ...]:
    """The levels the episode's own facility cannot take its client at now (no read at all where no facility
    limits any level, as with the one default facility)."""
    services = services_of(request)
    if all(_unlimited(f) for f in services.episodes.facilities.by_id.values()):
        return ()
    at = await run_in_threadpool(services.reads.facility, episode_id)
    facility = services.episodes.facilities.get(at or services.episodes.facilities.default_id)
    return await unavailable_at(request, facility) if facility is not None else ()


def census_by_facility(
    request: Request, caller: ApiKey, rows: list[dict[str, Any]], only: str | None = None
) -> list[dict[str, Any]]:
    """Each facility in the caller's scope (or `only` that one): occupancy against capacity, level by level."""
    return facility_census(services_of(request).episodes.facilities, rows, facility_scope(caller), only)
