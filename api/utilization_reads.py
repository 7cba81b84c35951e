"""What the utilization review reads show: one episode's levels and authorizations (never its clinical content),
and the report over every open episode with authorizations. Shared by the API, its command answers and the
dashboard, so each shows the same thing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from continuum.domain.codec import decode, encode
from continuum.domain.episode import Episode
from continuum.domain.flags import Flag, FlagFamily
from continuum.domain.utilization import (
    STANDING_FAMILIES,
    UtilizationRow,
    beyond_authorization,
    expiring,
    levels,
    mismatch_report,
    utilization_row,
)
from continuum.eventlog.reads import EpisodeReads, Scope

UTILIZATION_FLAGS = STANDING_FAMILIES | {FlagFamily.CONCURRENT_REVIEW_OVERDUE}


def levels_body(state: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The recommended, clinical and authorized levels side by side, how they stand, and why."""
    shown: dict[str, Any] = encode(levels(decode(Episode, state), at))
    return shown


def authorizations_body(state: dict[str, Any], at: datetime) -> dict[str, Any]:
    """What a utilization reviewer reads of an episode: its status, levels, authorizations and their flags."""
    episode = decode(Episode, state)
    return {
        "episode_id": episode.episode_id,
        "status": episode.status.value,
        "levels": encode(levels(episode, at)),
        "authorizations": encode(episode.authorizations),
        "flags": [str(f) for f in map(Flag.parse, episode.flags) if f.family in UTILIZATION_FLAGS],
    }


def utilization_report(
    reads: EpisodeReads, at: datetime, days: int, facilities: Scope = None, facility: str | None = None
) -> dict[str, Any]:
    """Authorizations ending within `days` days, stays beyond their authorization, and the mismatches between the
    recommended, clinical and authorized levels by facility, reason and level; at the reader's facilities (and
    `facility`, if given), each row naming its facility."""
    found = reads.with_authorizations(facilities, facility)
    at_facility = {state["episode_id"]: where for where, state in found}
    rows = [utilization_row(decode(Episode, state), at) for _, state in found]

    def row(shown: UtilizationRow) -> dict[str, Any]:
        return {
            "episode_id": shown.episode_id,
            "facility": at_facility[shown.episode_id],
            "status": shown.status.value,
            **encode(shown.levels),
        }

    return {
        "at": encode(at),
        "days": days,
        "expiring": [row(r) for r in expiring(rows, at, timedelta(days=days))],
        "beyond_authorization": [row(r) for r in beyond_authorization(rows)],
        "mismatches": encode(mismatch_report(rows, group_by=lambda r: at_facility[r.episode_id])),
    }
