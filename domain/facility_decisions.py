"""Decisions about where an episode is: a transfer to another facility, and a placement the facility cannot take
(not offered, or full), which records a waitlist entry with the interim level instead of pretending."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from datetime import datetime, timedelta

from continuum.domain.commands import MAX_NOTE, TransferEpisode
from continuum.domain.episode import Episode
from continuum.domain.errors import CommandRejected
from continuum.domain.events import DomainEvent, EpisodeTransferred, LevelChanged, PlacementOverridden, WaitlistEntered
from continuum.domain.facilities import DEFAULT_FACILITY
from continuum.domain.ids import lab_or_facility_id, staff_id
from continuum.domain.levels import LevelOfCare
from continuum.domain.policy import Policy, load_policy
from continuum.domain.stays import move
from continuum.domain.values import text_problem


def interim_level(wanted: LevelOfCare, unavailable: Collection[LevelOfCare]) -> LevelOfCare | None:
    """Where a client waiting for `wanted` is placed meanwhile: the nearest level in intensity the facility can
    take them at, the more intensive one first at equal distance (more support, never less, when in doubt), and
    never withdrawal management for a client who does not need it (it is medical care, not a waiting room)."""
    candidates = [
        level
        for level in LevelOfCare
        if level not in unavailable and (level is not LevelOfCare.WITHDRAWAL_MANAGEMENT or wanted is level)
    ]
    if wanted in candidates:
        return wanted
    if not candidates:
        return None
    return min(candidates, key=lambda level: (abs(level.intensity - wanted.intensity), -level.intensity))


def placement_at_facility(
    state: Episode, wanted: LevelOfCare, unavailable: Collection[LevelOfCare], policy: Policy, at: datetime
) -> tuple[LevelOfCare, list[DomainEvent]]:
    """The level the client is placed at for `wanted`, and the waitlist entry if the facility cannot take them
    there now; refused if it can take them at no level at all."""
    level = interim_level(wanted, unavailable)
    if level is None:
        raise CommandRejected(f"facility {facility_of(state)} has no room at any level of care")
    if level is wanted:
        return level, []
    return level, [WaitlistEntered(state.episode_id, at, state.facility_id, wanted, level, policy.version)]


def facility_of(state: Episode) -> str:
    """The facility the episode is at (an episode opened before facilities is at the default one)."""
    return state.facility_id or DEFAULT_FACILITY


def decide_transfer(
    state: Episode, command: TransferEpisode, policy: Policy, at: datetime, day: timedelta
) -> list[DomainEvent]:
    """The episode moves to `command.facility_id`, whose policy (sent with the command) decides from now on; a
    client whose level the new facility cannot take waits there for it at an interim level."""
    to = lab_or_facility_id(command.facility_id)
    if to == facility_of(state):
        raise CommandRejected(f"the episode is already at facility {to}")
    problem = text_problem(command.reason)
    if problem is not None or not command.reason.strip() or len(command.reason) > MAX_NOTE:
        raise CommandRejected(f"a reason is 1-{MAX_NOTE} characters and {problem or 'is needed'}")
    new_policy = load_policy(command.policy_text, command.directory_text) if command.policy_text else policy
    transferred = EpisodeTransferred(
        state.episode_id, at, state.facility_id, to, command.reason, staff_id(command.clinician), new_policy.version
    )
    if state.level is None:
        return [transferred]
    there = dataclasses.replace(state, facility_id=to)
    level, waiting = placement_at_facility(there, state.level, command.unavailable, new_policy, at)
    if not waiting:
        return [transferred]
    return [
        transferred,
        *waiting,
        move(state, level, f"transfer to {to} (waitlisted for {state.level.value})", new_policy, at),
    ]


def waitlist_moves(
    state: Episode, events: list[DomainEvent], unavailable: Collection[LevelOfCare], policy: Policy, at: datetime
) -> list[DomainEvent]:
    """`events` with a move into a level the facility cannot take the client at now made a waitlist entry and a
    move to the interim level instead (or no move, if the interim level is where the client already is)."""
    kept: list[DomainEvent] = []
    for event in events:
        if not isinstance(event, LevelChanged) or event.to_level not in unavailable:
            kept.append(event)
            continue
        level, waiting = placement_at_facility(state, event.to_level, unavailable, policy, at)
        if level is event.from_level and kept and isinstance(kept[-1], PlacementOverridden):
            kept.pop()  # no move: the placement stands (an override counts only with the move it makes)
        kept += waiting
        if level is not event.from_level:
            kept.append(move(state, level, f"{event.cause} (waitlisted for {event.to_level.value})", policy, at))
    return kept
