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
    if not facility.capacity and len(facility.levels) == len(LevelOfCare):
        return ()  # no limit anywhere: nothing to count
    occupancy = await run_in_threadpool(services_of(request).reads.occupancy, facility.facility_id)
    return tuple(sorted(facility.unavailable(occupancy), key=lambda level: level.intensity))


async def unavailable_for_episode(request: Request, episode_id: str) -> tuple[LevelOfCare, ...]:
    """The levels the episode's own facility cannot take its client at now."""
    services = services_of(request)
    at = await run_in_threadpool(services.reads.facility, episode_id)
    facility = services.episodes.facilities.get(at or services.episodes.facilities.default_id)
    return await unavailable_at(request, facility) if facility is not None else ()


def census_by_facility(
    request: Request, caller: ApiKey, rows: list[dict[str, Any]], only: str | None = None
) -> list[dict[str, Any]]:
    """Each facility in the caller's scope (or `only` that one): its open episodes by level, against the level's
    capacity (None: no limit), with how many of them wait there for another level."""
    facilities = services_of(request).episodes.facilities
    scope = facility_scope(caller)
    shown = [
        f
        for f in facilities.by_id.values()
        if (scope is None or f.facility_id in scope) and (only is None or f.facility_id == only)
    ]
    named = {f.facility_id for f in shown}
    # An episode at a facility no longer configured (one opened before facilities, at `main`) still counts.
    extra = sorted({str(r["facility"]) for r in rows} - named)
    body = []
    for facility_id in [*(f.facility_id for f in shown), *extra]:
        facility = facilities.get(facility_id)
        mine = [r for r in rows if r["facility"] == facility_id]
        levels = []
        for level in LevelOfCare:
            taken = sum(int(r["episodes"]) for r in mine if r["level"] == level.value)
            offered = facility.offers(level) if facility else taken > 0
            if not offered and not taken:
                continue
            capacity = facility.capacity.get(level) if facility else None
            levels.append(
                {
                    "level": level.value,
                    "offered": offered,
                    "occupancy": taken,
                    "capacity": capacity,
                    "free": None if capacity is None else max(capacity - taken, 0),
                    "waitlisted": sum(int(r["waitlisted"]) for r in mine if r["level"] == level.value),
                }
            )
        body.append(
            {
                "facility": facility_id,
                "name": facility.name if facility else facility_id,
                "open": sum(int(r["episodes"]) for r in mine),
                "unassessed": sum(int(r["episodes"]) for r in mine if r["level"] == "none"),
                "levels": levels,
            }
        )
    return body


def census_totals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The census rows (by facility, level and status) summed over the facilities: by level and status."""
    totals: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (str(row["level"]), str(row["status"]))
        totals[key] = totals.get(key, 0) + int(row["episodes"])
    return [{"level": level, "status": status, "episodes": n} for (level, status), n in sorted(totals.items())]
