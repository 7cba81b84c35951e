"""Stays on the continuum: the one way a client moves to another level (`move`), and the stays an episode had."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from continuum.domain.episode import Episode
from continuum.domain.events import DomainEvent, EpisodeClosed, LevelChanged, StayStarted
from continuum.domain.levels import LevelOfCare, direction
from continuum.domain.policy import Policy

PLACEMENT = "placement"  # the cause of an episode's first stay


def move(
    state: Episode,
    to: LevelOfCare,
    cause: str,
    policy: Policy,
    at: datetime,
    *,
    test_id: str | None = None,
    follow_up_id: str | None = None,
) -> LevelChanged:
    """The client moves from the current level to `to`, for `cause` (the drug test or the follow-up behind it,
    if one is); the new stay's review comes at the policy's minimum for `to`."""
    if state.level is None:
        raise ValueError("a client who has no level yet is placed, not moved")
    return LevelChanged(
        state.episode_id,
        at,
        state.level,
        to,
        direction(state.level, to),
        cause,
        policy.stay_minimum_days[to],
        policy.version,
        cause_test_id=test_id,
        cause_follow_up_id=follow_up_id,
    )


def next_level_down(state: Episode, policy: Policy) -> LevelOfCare | None:
    """Where `goals_met` moves the client: the placement's level after withdrawal, or the policy's step down."""
    if state.level is LevelOfCare.WITHDRAWAL_MANAGEMENT:
        return state.after_withdrawal_level or policy.after_withdrawal_minimum
    return policy.step_down.get(state.level) if state.level else None


def step_up_target(state: Episode, policy: Policy) -> LevelOfCare | None:
    """Where a step-up moves the client from the current level (None: the policy names nothing higher)."""
    return policy.step_up.get(state.level) if state.level else None


@dataclass(frozen=True)
class Stay:
    """A stretch of the episode at one level: from `start` until `end` (None while it goes on), and why."""

    level: LevelOfCare
    start: datetime
    end: datetime | None
    cause: str


def stays(events: Iterable[DomainEvent]) -> list[Stay]:
    """The stays in an episode's events, in order: each begins at a placement or a move, and ends at the
    next move or at the episode's close."""
    found: list[Stay] = []
    for event in events:
        match event:
            case StayStarted(level=level):
                found = _ended(found, event.occurred_at) + [Stay(level, event.occurred_at, None, PLACEMENT)]
            case LevelChanged(to_level=level, cause=cause):
                found = _ended(found, event.occurred_at) + [Stay(level, event.occurred_at, None, cause)]
            case EpisodeClosed():
                found = _ended(found, event.occurred_at)
    return found


def _ended(found: list[Stay], at: datetime) -> list[Stay]:
    if not found or found[-1].end is not None:
        return found
    last = found[-1]
    return [*found[:-1], Stay(last.level, last.start, at, last.cause)]
