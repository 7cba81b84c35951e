"""The one fold: an episode's state is its events applied in order. Used by workflows, projections, audits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from functools import reduce

from domain.episode import Episode, EpisodeStatus
from domain.errors import DomainError
from domain.events import (
    DomainEvent,
    EpisodeClosed,
    EpisodeOpened,
    EpisodePutOnHold,
    EpisodeResumed,
    FlagCleared,
    FlagRaised,
    LevelChanged,
    StayStarted,
)


class FoldError(DomainError):
    """An event that cannot follow the state before it (a history out of order, or from another episode)."""


def evolve(state: Episode | None, event: DomainEvent) -> Episode:
    """The state after `event`; `state` is None before the first event of an episode."""
    if state is None:
        if not isinstance(event, EpisodeOpened):
            raise FoldError(f"an episode's history must begin with EpisodeOpened, not {type(event).__name__}")
        return Episode(
            episode_id=event.episode_id,
            client_id=event.client_id,
            status=EpisodeStatus.INTAKE,
            opened_at=event.occurred_at,
            status_since=event.occurred_at,
            version=1,
        )
    if event.episode_id != state.episode_id:
        raise FoldError(f"event for episode {event.episode_id} applied to episode {state.episode_id}")
    state = replace(state, version=state.version + 1)
    match event:
        case EpisodeOpened():
            raise FoldError("an episode is opened only once")
        case StayStarted(level=level, occurred_at=at):
            return replace(state, status=EpisodeStatus.ACTIVE, status_since=at, level=level, level_since=at)
        case LevelChanged(to_level=level, occurred_at=at):
            return replace(state, level=level, level_since=at)
        case FlagRaised(flag=flag):
            return replace(state, flags=tuple(sorted({*state.flags, flag})))
        case FlagCleared(flag=flag):
            return replace(state, flags=tuple(f for f in state.flags if f != flag))
        case EpisodePutOnHold(reason=reason, occurred_at=at):
            return replace(state, status=EpisodeStatus.ON_HOLD, status_since=at, hold_reason=reason)
        case EpisodeResumed(occurred_at=at):
            return replace(state, status=EpisodeStatus.ACTIVE, status_since=at, hold_reason=None)
        case EpisodeClosed(reason=reason, occurred_at=at):
            return replace(
                state, status=EpisodeStatus.CLOSED, status_since=at, discharge_reason=reason, closed_at=at
            )
    raise FoldError(f"no rule folds {type(event).__name__}")


def fold(events: Iterable[DomainEvent], state: Episode | None = None) -> Episode | None:
    return reduce(evolve, events, state)
