"""Decisions: `decide(state, command, policy, at)` -> the events to record, or CommandRejected with a reason.

`admit(state, command, at)` holds the admission rules on a command's values (plausible instants, text
without control characters); see its docstring for why they stand apart from `decide`.
Pure: time (`at`, and the length of a care-clock `day`) comes in as arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from enum import Enum
from functools import cache
from typing import Any

from continuum.domain.aftercare_decisions import admit_aftercare, consequences, decide_aftercare
from continuum.domain.assessment import place, validate_ratings
from continuum.domain.attendance import admit_attendance, decide_attendance
from continuum.domain.authorization_decisions import (
    admit_authorizations,
    decide_authorizations,
    standing_consequences,
)
from continuum.domain.commands import (
    AFTER_CLOSING,
    AFTERCARE_COMMANDS,
    ATTENDANCE_COMMANDS,
    AUTHORIZATION_CLOCK_COMMANDS,
    AUTHORIZATION_COMMANDS,
    MAX_NOTE,
    MOVING_COMMANDS,
    PLAN_COMMANDS,
    TESTING_COMMANDS,
    CancelTest,
    ChangeMedications,
    CloseCareWeek,
    Command,
    CompleteAftercare,
    Discharge,
    EscalateReEngagementReview,
    EscalateReview,
    EscalateTreatmentPlan,
    FlagPossibleDropout,
    OpenEpisode,
    OverridePlacement,
    PutOnHold,
    RecordAssessment,
    RecordReviewOutcome,
    RecordSpecimenCollection,
    RecordTestResult,
    RequestReview,
    Resume,
    TransferEpisode,
)
from continuum.domain.episode import DischargeReason, Episode, EpisodeStatus, ReviewOutcome
from continuum.domain.errors import CommandRejected, InvalidIdentifier
from continuum.domain.events import (
    AssessmentRecorded,
    DomainEvent,
    EpisodeClosed,
    EpisodeOpened,
    EpisodePutOnHold,
    EpisodeResumed,
    LevelChangeDecided,
    PlacementDecided,
    PlacementOverridden,
    ReviewCompleted,
    ReviewEscalated,
    ReviewRequested,
    StayStarted,
)
from continuum.domain.facility_decisions import decide_transfer, placement_at_facility, waitlist_moves
from continuum.domain.fold import evolve, paused_dues, stay_elapsed
from continuum.domain.ids import client_id, episode_id, lab_or_facility_id, staff_id
from continuum.domain.levels import LevelOfCare
from continuum.domain.plan_decisions import admit_plans, check_goals_met, decide_plans, initial_plan_due
from continuum.domain.policy import LevelChangePolicy, Policy
from continuum.domain.stays import move, next_level_down, step_up_target
from continuum.domain.testing_decisions import admit_testing, decide_testing
from continuum.domain.values import text_problem

DAY = timedelta(days=1)


def decide(
    state: Episode | None, command: Command, policy: Policy, at: datetime, day: timedelta = DAY
) -> list[DomainEvent]:
    """The events that `command` records against `state`, or CommandRejected saying why not."""
    try:
        events = _decide(state, command, policy, at, day)
        if state is not None and isinstance(command, MOVING_COMMANDS) and command.unavailable:
            events = waitlist_moves(state, events, command.unavailable, policy, at)
        events += consequences(state, events, policy, at, day)
        return events + standing_consequences(state, events, at)
    except InvalidIdentifier as error:
        raise CommandRejected(str(error)) from None


def admit(state: Episode | None, command: Command, at: datetime) -> None:
    """Refuse (CommandRejected) a command whose values cannot be on record: an implausible instant (before
    1900, more than a day ahead, a specimen collected long before its test was ordered) or text with
    control characters.

    Checked when a command arrives (the workflow's update validators), never in `decide`: a history
    recorded before these rules may hold such a value, and it must replay to what it recorded.
    """
    if state is None or isinstance(command, OpenEpisode):
        return
    match command:
        case Discharge(note=note) | OverridePlacement(note=note):
            if text_problem(note) is not None:
                raise CommandRejected("a note must not contain control characters other than newline and tab")
        case _ if isinstance(command, TESTING_COMMANDS):
            admit_testing(state, command, at)
        case _ if isinstance(command, AFTERCARE_COMMANDS):
            admit_aftercare(command, at)
        case _ if isinstance(command, ATTENDANCE_COMMANDS):
            admit_attendance(command)
        case _ if isinstance(command, PLAN_COMMANDS):
            admit_plans(command)
        case _ if isinstance(command, AUTHORIZATION_COMMANDS):
            admit_authorizations(command, at)


def _decide(state: Episode | None, command: Command, policy: Policy, at: datetime, day: timedelta) -> list[DomainEvent]:
    if isinstance(command, OpenEpisode):
        return _open(state, command, policy, at, day)
    if state is None:
        raise CommandRejected("the episode has not been opened")
    if state.status is EpisodeStatus.CLOSED and not isinstance(command, AFTER_CLOSING):
        reason = state.discharge_reason.value if state.discharge_reason else "closed"
        raise CommandRejected(f"the episode is closed ({reason}); nothing more can be recorded")
    kind: type = type(command)
    when, handler = _handler_for(kind)
    if when is not When.OPEN:
        _check_status(state, when)
    return handler(state, command, policy, at, day)


class When(Enum):
    """The episode status a command is decided in (an open episode is never closed; see `_decide`)."""

    OPEN = "open"  # whatever the status: results, prescriptions, consents, partners' answers arrive anyway
    INTAKE = "intake"  # before the assessment
    ON_HOLD = "on_hold"
    ACTIVE = "active"


def _check_status(state: Episode, when: When) -> None:
    """Refuse a command in a status it is not decided in, saying what to do first."""
    if state.status is EpisodeStatus.INTAKE and when is not When.INTAKE:
        raise CommandRejected("the client has not been assessed yet; record the assessment first")
    if when is When.INTAKE and state.status is not EpisodeStatus.INTAKE:
        raise CommandRejected("the client was already assessed and placed; override the placement instead")
    if when is When.ON_HOLD and state.status is not EpisodeStatus.ON_HOLD:
        raise CommandRejected("the episode is not on hold")
    if when is When.ACTIVE and state.status is EpisodeStatus.ON_HOLD:
        raise CommandRejected(f"the episode is on hold ({state.hold_reason}); resume it first")


Handler = Callable[[Episode, Any, Policy, datetime, timedelta], list[DomainEvent]]


def _not_accepted(state: Episode, command: Command, policy: Policy, at: datetime, day: timedelta) -> list[DomainEvent]:
    raise CommandRejected(f"{type(command).__name__} is not a command an episode accepts")


@cache
def _handler_for(kind: type) -> tuple[When, Handler]:
    """When a command type is decided, and by which function (a type the table does not name is refused)."""
    return next((_HANDLERS[t] for t in kind.__mro__ if t in _HANDLERS), (When.ACTIVE, _not_accepted))


def _open(
    state: Episode | None, command: OpenEpisode, policy: Policy, at: datetime, day: timedelta
) -> list[DomainEvent]:
    if state is not None:
        raise CommandRejected(f"episode {state.episode_id} is already open")
    eid = episode_id(command.episode_id)
    previous = episode_id(command.previous_episode_id) if command.previous_episode_id else None
    facility = lab_or_facility_id(command.facility_id) if command.facility_id is not None else None
    opened = EpisodeOpened(eid, at, client_id(command.client_id), previous, facility)
    if command.assessment is None:
        return [opened]
    return [opened, *_decide(evolve(None, opened), command.assessment, policy, at, day)]


def _discharge(state: Episode, command: Discharge, policy: Policy, at: datetime, day: timedelta) -> list[DomainEvent]:
    _check_note(command.note)
    return [EpisodeClosed(state.episode_id, at, command.reason, command.reason.teds, policy.version, command.note)]


def _resume(state: Episode, command: Resume, policy: Policy, at: datetime, day: timedelta) -> list[DomainEvent]:
    held = (at - state.status_since).total_seconds()
    if not policy.hold_pauses_clocks:
        return [EpisodeResumed(state.episode_id, at, held)]
    return [EpisodeResumed(state.episode_id, at, held, True, paused_dues(state))]


def _put_on_hold(state: Episode, command: PutOnHold, policy: Policy, at: datetime, day: timedelta) -> list[DomainEvent]:
    return [EpisodePutOnHold(state.episode_id, at, command.reason)]


def _escalate_review(
    state: Episode, command: EscalateReview, policy: Policy, at: datetime, day: timedelta
) -> list[DomainEvent]:
    review_id = command.review_id
    pending = state.pending_review
    if pending is None or pending.review_id != review_id:
        raise CommandRejected(f"review {review_id} is not pending")
    if pending.escalated:
        raise CommandRejected(f"review {review_id} was already escalated")
    if at < pending.due_at + day * policy.review_escalate_after_days:
        raise CommandRejected(f"review {review_id} is not overdue yet")
    return [ReviewEscalated(state.episode_id, at, review_id, pending.due_at, policy.version)]


def _complete_aftercare(
    state: Episode, command: CompleteAftercare, policy: Policy, at: datetime, day: timedelta
) -> list[DomainEvent]:
    if state.level is not LevelOfCare.AFTERCARE:
        raise CommandRejected("only aftercare completes at the end of its period")
    if stay_elapsed(state, at) < day * (state.review_after_days or 0):
        raise CommandRejected("the aftercare period has not ended")
    completed = DischargeReason.COMPLETED
    return [EpisodeClosed(state.episode_id, at, completed, completed.teds, policy.version)]


def _assess_command(
    state: Episode, command: RecordAssessment, policy: Policy, at: datetime, day: timedelta
) -> list[DomainEvent]:
    return _assess(state, command, policy, at, day)


def _override_command(
    state: Episode, command: OverridePlacement, policy: Policy, at: datetime, day: timedelta
) -> list[DomainEvent]:
    """A placement override or a later move; into a level the facility cannot take the client at now, a waitlist
    entry and the interim level (`domain.facility_decisions`)."""
    return waitlist_moves(state, _override_or_move(state, command, policy, at, day), command.unavailable, policy, at)


def _override_or_move(
    state: Episode, command: OverridePlacement, policy: Policy, at: datetime, day: timedelta
) -> list[DomainEvent]:
    rules = policy.level_changes
    if rules is None:  # a policy from before the rule: an override at any time, in any direction
        return _override(state, command, policy, at)
    if command.level is not state.level and _placement_open(state, rules, at, day):
        if command.director is not None:
            raise CommandRejected("a placement override is the clinician's; a director decides a later step down")
        return _override(state, command, policy, at)
    return _decide_level_change(state, command, rules, policy, at)


def _placement_open(state: Episode, rules: LevelChangePolicy, at: datetime, day: timedelta) -> bool:
    """The placement may be overridden in its first days (per policy), while every move since was an override."""
    if state.placed_at is None or state.moves != state.placement_overrides:
        return False
    return at < state.placed_at + day * rules.placement_override_within_days


def _decide_level_change(
    state: Episode, command: OverridePlacement, rules: LevelChangePolicy, policy: Policy, at: datetime
) -> list[DomainEvent]:
    """After the placement: a move up with any coded reason; a move down only as the director's decision."""
    _check_note(command.note)
    assert state.level is not None
    if command.level is state.level:
        raise CommandRejected(f"the client is already at {command.level.value}")
    clinician = staff_id(command.clinician)
    director = staff_id(command.director) if command.director is not None else None
    reasons = ", ".join(sorted(r.value for r in rules.director_step_down_reasons))
    moving = f"from {state.level.value} to {command.level.value}"
    if command.level.intensity > state.level.intensity:
        cause = f"move up by {clinician} ({command.reason.value})"
    elif director is None:
        raise CommandRejected(
            f"the placement can no longer be overridden (its first {rules.placement_override_within_days:g} day(s)"
            f" have passed, or the client has moved since); a step down {moving} needs the completion review"
            f" (its outcome goals_met), or the clinical director's decision with a reason among {reasons}"
        )
    elif command.reason not in rules.director_step_down_reasons:
        raise CommandRejected(f"a director's step down gives a reason among {reasons}, not {command.reason.value}")
    else:
        cause = f"step down on the clinical director's decision ({director}, {command.reason.value})"
    decided = LevelChangeDecided(
        state.episode_id,
        at,
        state.level,
        command.level,
        command.reason,
        command.note,
        clinician,
        director,
        policy.version,
        state.facility_id,
    )
    return [decided, move(state, command.level, cause, policy, at)]


def _request_review_command(
    state: Episode, command: RequestReview, policy: Policy, at: datetime, day: timedelta
) -> list[DomainEvent]:
    return _request_review(state, command.review_id, policy, at, day)


def _check_note(note: str) -> None:
    if len(note) > MAX_NOTE:
        raise CommandRejected(f"a note is at most {MAX_NOTE} characters")


def _assess(
    state: Episode, command: RecordAssessment, policy: Policy, at: datetime, day: timedelta
) -> list[DomainEvent]:
    ratings = validate_ratings(tuple(command.ratings))
    placement = place(ratings, policy)
    first, waiting = placement_at_facility(state, placement.recommended_level, command.unavailable, policy, at)
    return [
        AssessmentRecorded(state.episode_id, at, ratings, staff_id(command.assessed_by)),
        PlacementDecided(
            state.episode_id,
            at,
            placement.recommended_level,
            placement.after_withdrawal_level,
            placement.rules_fired,
            policy.version,
            placement.decided_by,
            ratings,
            state.facility_id,
        ),
        *waiting,
        StayStarted(
            state.episode_id,
            at,
            first,
            policy.stay_minimum_days[first],
            policy.version,
            initial_plan_due(policy, at, day),
        ),
    ]


def _override(state: Episode, command: OverridePlacement, policy: Policy, at: datetime) -> list[DomainEvent]:
    _check_note(command.note)
    if command.level is state.level:
        raise CommandRejected(f"the client is already at {command.level.value}")
    recommended = state.recommended_level or state.level
    assert recommended is not None
    clinician = staff_id(command.clinician)
    return [
        PlacementOverridden(state.episode_id, at, recommended, command.level, command.reason, command.note, clinician),
        move(state, command.level, f"placement override ({command.reason.value})", policy, at),
    ]


def _request_review(state: Episode, review_id: str, policy: Policy, at: datetime, day: timedelta) -> list[DomainEvent]:
    assert state.level is not None
    if state.level is LevelOfCare.AFTERCARE:
        raise CommandRejected("aftercare has no completion review")
    if state.pending_review is not None:
        raise CommandRejected(f"review {state.pending_review.review_id} is already pending")
    if stay_elapsed(state, at) < day * (state.review_after_days or 0):
        raise CommandRejected("the stay has not reached its review point")
    return [
        ReviewRequested(state.episode_id, at, review_id, state.level, at + day * policy.review_due_days, policy.version)
    ]


def _review_outcome(
    state: Episode, command: RecordReviewOutcome, policy: Policy, at: datetime, day: timedelta
) -> list[DomainEvent]:
    pending = state.pending_review
    if pending is None:
        raise CommandRejected(f"no review is pending, so review {command.review_id} cannot be recorded")
    if pending.review_id != command.review_id:
        raise CommandRejected(f"review {command.review_id} is not the pending review ({pending.review_id})")
    therapist = staff_id(command.therapist)
    goals_met = check_goals_met(state, command)
    assert state.level is not None
    cause = f"review {pending.review_id}: {command.outcome.value}"
    match command.outcome:
        case ReviewOutcome.EXTEND:
            days = (
                command.next_review_in_days if command.next_review_in_days is not None else policy.extend_default_days
            )
            if not 0 < days <= 365:
                raise CommandRejected("the next review must come within 1 to 365 days")
            next_after = stay_elapsed(state, at) / day + days
            return [
                ReviewCompleted(
                    state.episode_id, at, pending.review_id, command.outcome, therapist, policy.version, next_after
                )
            ]
        case ReviewOutcome.GOALS_MET:
            target = next_level_down(state, policy)
            if target is None:
                raise CommandRejected(f"the policy names no step down from {state.level.value}")
        case ReviewOutcome.STEP_UP:
            target = step_up_target(state, policy)
            if target is None:
                raise CommandRejected(f"the policy names no more intensive level than {state.level.value}")
    if command.next_review_in_days is not None:
        raise CommandRejected("a next review date goes only with the outcome `extend`")
    return [
        ReviewCompleted(
            state.episode_id, at, pending.review_id, command.outcome, therapist, policy.version, goals_met=goals_met
        ),
        move(state, target, cause, policy, at),
    ]


# Results and prescriptions arrive whatever the status; so do consents, partners' answers and follow-up outcomes.
_ANY_STATUS_TESTING = (ChangeMedications, RecordTestResult, RecordSpecimenCollection, CancelTest)
_HANDLERS: dict[type, tuple[When, Handler]] = {
    Discharge: (When.OPEN, _discharge),
    **{kind: (When.ACTIVE, decide_testing) for kind in TESTING_COMMANDS},
    **{kind: (When.OPEN, decide_testing) for kind in _ANY_STATUS_TESTING},
    **{kind: (When.OPEN, decide_aftercare) for kind in AFTERCARE_COMMANDS},
    # Sessions are scheduled and recorded whatever the status (a hold skips its weeks); the clock's only when active.
    **{kind: (When.OPEN, decide_attendance) for kind in ATTENDANCE_COMMANDS},
    CloseCareWeek: (When.ACTIVE, decide_attendance),
    FlagPossibleDropout: (When.ACTIVE, decide_attendance),
    EscalateReEngagementReview: (When.ACTIVE, decide_attendance),
    # A plan is recorded or reviewed whatever the status (once placed, until closed); the clock's only when active.
    **{kind: (When.OPEN, decide_plans) for kind in PLAN_COMMANDS},
    EscalateTreatmentPlan: (When.ACTIVE, decide_plans),
    # The utilization reviewer records whatever the status (once placed, until closed); the clock's only when active.
    **{kind: (When.OPEN, decide_authorizations) for kind in AUTHORIZATION_COMMANDS},
    **{kind: (When.ACTIVE, decide_authorizations) for kind in AUTHORIZATION_CLOCK_COMMANDS},
    RecordAssessment: (When.INTAKE, _assess_command),
    TransferEpisode: (When.OPEN, decide_transfer),
    Resume: (When.ON_HOLD, _resume),
    PutOnHold: (When.ACTIVE, _put_on_hold),
    OverridePlacement: (When.ACTIVE, _override_command),
    RecordReviewOutcome: (When.ACTIVE, _review_outcome),
    RequestReview: (When.ACTIVE, _request_review_command),
    EscalateReview: (When.ACTIVE, _escalate_review),
    CompleteAftercare: (When.ACTIVE, _complete_aftercare),
}
