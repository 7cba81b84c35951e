"""Three levels side by side: the recommended (the placement), the clinical (what is delivered) and the authorized
(the level with a current approval), how they stand against each other at an instant, the flags that say so, and
the utilization review report over many episodes (rows that a caller may group by another key, such as a facility).

A clinical decision never waits for a payer: these are read from the state, and flagged, never enforced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from continuum.domain.authorizations import Authorization, AuthorizationStatus, DenialReason
from continuum.domain.episode import Episode, EpisodeStatus, OverrideReason
from continuum.domain.flags import Flag, FlagFamily
from continuum.domain.levels import LevelOfCare

# The flags `standing_flags` keeps in step with the state (the concurrent review's own flag is the clock's).
STANDING_FAMILIES = frozenset(
    {FlagFamily.AUTHORIZATION_EXPIRED, FlagFamily.LEVEL_UNAUTHORIZED, FlagFamily.AUTHORIZED_LEVEL_MISMATCH}
)


class Standing(StrEnum):
    """The clinical level against the authorizations, at an instant."""

    NOT_TRACKED = "not_tracked"  # no authorization requested (or no level yet, or closed): nothing to compare
    AUTHORIZED = "authorized"  # a current approval for the clinical level
    EXPIRED = "expired"  # the stay at the clinical level ran past its approval's end
    UNAUTHORIZED = "unauthorized"  # no current approval for any level
    MISMATCH = "mismatch"  # a current approval, for another level than the clinical one


class UnauthorizedReason(StrEnum):
    """Why the clinical level has no current approval (the coded reason of a flag and of the report)."""

    NOT_REQUESTED = "not_requested"
    PENDING = "pending"  # a request for it awaits the payer
    DENIED = "payer_denial"  # the last request for it was denied (`denial_reason` says why)
    NOT_STARTED = "not_started"  # approved, from a later start
    EXPIRED = "expired"


@dataclass(frozen=True)
class Levels:
    """The three levels of one episode at an instant, how they stand, and why."""

    recommended: LevelOfCare | None
    clinical: LevelOfCare | None
    authorized: LevelOfCare | None
    standing: Standing
    reason: UnauthorizedReason | None  # with expired, unauthorized and mismatch
    denial_reason: DenialReason | None  # with the reason payer_denial
    override_reason: OverrideReason | None  # why the clinical level differs from the recommended one (the placement)
    authorization_id: str | None  # the approval in force (authorized), or the one that ran out (expired)
    authorized_until: datetime | None


def levels(state: Episode, at: datetime) -> Levels:
    """The recommended, clinical and authorized levels at `at`, and how the clinical one stands."""
    clinical = state.level
    # The placement as overridden still stands while every move was an override; moves along the continuum since
    # (a step down, a step up) are care, not a mismatch with the recommendation.
    placement_stands = state.moves == state.placement_overrides
    differs = state.recommended_level not in (None, clinical)
    override = state.override_reason if differs and placement_stands else None
    current = [a for a in state.authorizations if a.current_at(at)]
    authorized = next((a for a in reversed(current) if a.level is clinical), current[-1] if current else None)

    def shown(standing: Standing, reason: UnauthorizedReason | None = None, of: Authorization | None = None) -> Levels:
        of = of or authorized
        denial = _last_request(state, clinical).denial_reason if reason is UnauthorizedReason.DENIED else None
        return Levels(
            state.recommended_level,
            clinical,
            authorized.level if authorized else None,
            standing,
            reason,
            denial,
            override,
            of.authorization_id if of else None,
            of.end if of else None,
        )

    if not state.authorizations or clinical is None or state.status in (EpisodeStatus.CLOSED, EpisodeStatus.INTAKE):
        return shown(Standing.NOT_TRACKED)
    if authorized is not None and authorized.level is clinical:
        return shown(Standing.AUTHORIZED)
    ran_out = _ran_out(state, clinical, at)
    if ran_out is not None:
        return shown(Standing.EXPIRED, UnauthorizedReason.EXPIRED, ran_out)
    reason = _why_not(state, clinical, at)
    return shown(Standing.MISMATCH if authorized else Standing.UNAUTHORIZED, reason)


def _ran_out(state: Episode, level: LevelOfCare, at: datetime) -> Authorization | None:
    """The last approval for `level` that has ended (with none current for it, the stay went past its end)."""
    ended = [a for a in state.authorizations if a.approved and a.level is level and a.end is not None and a.end <= at]
    return max(ended, key=lambda a: a.end or at, default=None)


def _last_request(state: Episode, level: LevelOfCare | None) -> Authorization:
    return next(a for a in reversed(state.authorizations) if a.level is level)


def _why_not(state: Episode, level: LevelOfCare, at: datetime) -> UnauthorizedReason:
    if not any(a.level is level for a in state.authorizations):
        return UnauthorizedReason.NOT_REQUESTED
    last = _last_request(state, level)
    if last.status is AuthorizationStatus.REQUESTED:
        return UnauthorizedReason.PENDING
    if last.status is AuthorizationStatus.DENIED:
        return UnauthorizedReason.DENIED
    return UnauthorizedReason.NOT_STARTED if last.start is not None and at < last.start else UnauthorizedReason.EXPIRED


def standing_flags(state: Episode, at: datetime) -> dict[Flag, str]:
    """The flags the three levels call for at `at`, each with its reason in words (its code first)."""
    shown = levels(state, at)
    clinical = shown.clinical.value if shown.clinical else "none"
    code = shown.reason.value if shown.reason else ""
    if shown.denial_reason is not None:
        code = f"{code} ({shown.denial_reason.value})"
    match shown.standing:
        case Standing.EXPIRED:
            assert shown.authorized_until is not None
            ended = shown.authorized_until.isoformat()
            flag = Flag(FlagFamily.AUTHORIZATION_EXPIRED, shown.authorization_id)
            return {flag: f"expired: the stay at {clinical} went past {shown.authorization_id}'s end, {ended}"}
        case Standing.UNAUTHORIZED:
            return {Flag(FlagFamily.LEVEL_UNAUTHORIZED): f"{code}: {clinical} has no current authorization"}
        case Standing.MISMATCH:
            authorized = shown.authorized.value if shown.authorized else "none"
            reason = f"{code}: the clinical level is {clinical}, the authorized level {authorized}"
            return {Flag(FlagFamily.AUTHORIZED_LEVEL_MISMATCH): reason}
    return {}


def standing_changes(state: Episode, after: datetime) -> list[datetime]:
    """The instants after `after` at which an approval begins or ends, earliest first (the flags may change)."""
    instants = {t for a in state.authorizations if a.approved for t in (a.start, a.end) if t is not None and t > after}
    return sorted(instants)


# -- the report over many episodes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class UtilizationRow:
    """One open episode's levels at an instant: what the utilization review report reads."""

    episode_id: str
    status: EpisodeStatus
    levels: Levels


def utilization_row(state: Episode, at: datetime) -> UtilizationRow:
    return UtilizationRow(state.episode_id, state.status, levels(state, at))


def expiring(rows: Iterable[UtilizationRow], at: datetime, within: timedelta) -> list[UtilizationRow]:
    """The stays with a current approval (of their level or another) that ends within `within` of `at`, soonest
    first."""
    found = [
        r
        for r in rows
        if r.levels.authorized is not None
        and r.levels.authorized_until is not None
        and at < r.levels.authorized_until <= at + within
    ]
    return sorted(found, key=lambda r: (r.levels.authorized_until or at, r.episode_id))


def beyond_authorization(rows: Iterable[UtilizationRow]) -> list[UtilizationRow]:
    """The stays that went past their approval's end, longest past first."""
    found = [r for r in rows if r.levels.standing is Standing.EXPIRED and r.levels.authorized_until is not None]
    return sorted(found, key=lambda r: (_ended(r), r.episode_id))


def _ended(row: UtilizationRow) -> datetime:
    assert row.levels.authorized_until is not None
    return row.levels.authorized_until


class Comparison(StrEnum):
    RECOMMENDED_CLINICAL = "recommended_clinical"  # the placement was overridden (and stands): its coded reason
    CLINICAL_AUTHORIZED = "clinical_authorized"  # the clinical level has no current approval: why not


@dataclass(frozen=True)
class MismatchGroup:
    """The episodes whose levels differ in one way, for one reason, at one clinical level (within one group)."""

    group: str
    comparison: Comparison
    reason: str
    level: str
    episodes: tuple[str, ...]


def mismatch_report(
    rows: Iterable[UtilizationRow], group_by: Callable[[UtilizationRow], str] = lambda row: "all"
) -> list[MismatchGroup]:
    """The recommended / clinical / authorized mismatches by reason and clinical level, within the groups
    `group_by` names (one group, "all", unless a caller groups by another key: a facility, a payer)."""
    found: dict[tuple[str, Comparison, str, str], list[str]] = {}
    for row in rows:
        shown = row.levels
        level = shown.clinical.value if shown.clinical else "none"
        if shown.override_reason is not None:  # the placement overridden, and standing
            key = (group_by(row), Comparison.RECOMMENDED_CLINICAL, shown.override_reason.value, level)
            found.setdefault(key, []).append(row.episode_id)
        if shown.standing in (Standing.EXPIRED, Standing.UNAUTHORIZED, Standing.MISMATCH) and shown.reason:
            reason = shown.reason.value + (f":{shown.denial_reason.value}" if shown.denial_reason else "")
            found.setdefault((group_by(row), Comparison.CLINICAL_AUTHORIZED, reason, level), []).append(row.episode_id)
    return [MismatchGroup(*key, tuple(sorted(ids))) for key, ids in sorted(found.items())]
