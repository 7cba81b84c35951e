"""The episode's clock: what falls due next and when (a review, an escalation, the end of aftercare, a
schedule draw, a scheduled test, a missing result).

Pure, so the workflow only waits for the instant it returns and then issues the command.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from continuum.domain.aftercare import FollowUpKind, ReferralStatus
from continuum.domain.attendance import attendance_dues
from continuum.domain.authorization_decisions import authorization_dues
from continuum.domain.commands import (
    CheckAuthorizations,
    CloseCareWeek,
    CompleteAftercare,
    DrawTestSchedule,
    EscalateConcurrentReview,
    EscalateReEngagementReview,
    EscalateReview,
    EscalateStepUpReview,
    EscalateTreatmentPlan,
    FlagPossibleDropout,
    FlagReferralUnanswered,
    MarkResultOverdue,
    OrderScheduledTest,
    RequestConcurrentReview,
    RequestFollowUp,
    RequestReview,
)
from continuum.domain.episode import Episode, EpisodeStatus
from continuum.domain.flags import Flag, FlagFamily
from continuum.domain.fold import stay_elapsed
from continuum.domain.levels import LevelOfCare
from continuum.domain.plan_decisions import plan_dues
from continuum.domain.policy import Policy

ClockCommand = (
    RequestReview
    | EscalateReview
    | CompleteAftercare
    | DrawTestSchedule
    | OrderScheduledTest
    | MarkResultOverdue
    | EscalateStepUpReview
    | RequestFollowUp
    | FlagReferralUnanswered
    | CloseCareWeek
    | FlagPossibleDropout
    | EscalateReEngagementReview
    | EscalateTreatmentPlan
    | RequestConcurrentReview
    | EscalateConcurrentReview
    | CheckAuthorizations
)


@dataclass(frozen=True)
class Due:
    command: ClockCommand
    at: datetime


def next_due(state: Episode, policy: Policy, now: datetime, day: timedelta, **clocks: bool) -> Due | None:
    """The next command the clock issues, or None while nothing is scheduled (intake, on hold, closed,
    or only things a person must close, like an escalated review). `clocks` say which clocks a history keeps, as
    `dues` takes them (histories recorded before one replay without it)."""
    candidates = dues(state, policy, now, day, **clocks)
    return min(candidates, key=lambda due: due.at, default=None)


def dues(
    state: Episode,
    policy: Policy,
    now: datetime,
    day: timedelta,
    *,
    drug_testing: bool = True,
    plans: bool = True,
    authorizations: bool = True,
) -> list[Due]:
    """Everything the clock has scheduled, in no particular order (`next_due` is the earliest). `plans`: whether
    treatment-plan deadlines are kept; `authorizations`, concurrent reviews and the authorized level's flags."""
    candidates = [*_care_clock(state, policy, now, day), *_aftercare_clock(state, policy)]
    if drug_testing:
        candidates += _testing_clock(state, policy, now)
    # Only with `[services]` and once a session is on record: other episodes keep their command sequence.
    candidates += [Due(command, at) for command, at in attendance_dues(state, policy, day)]
    if plans:  # only with `[plans]` and once placed under it (StayStarted carries the initial plan's due date)
        candidates += [Due(command, at) for command, at in plan_dues(state, policy, day)]
    if authorizations:  # only with `[utilization_review]` and once an authorization is requested
        candidates += [Due(command, at) for command, at in authorization_dues(state, policy, now, day)]
    return candidates


def _care_clock(state: Episode, policy: Policy, now: datetime, day: timedelta) -> list[Due]:
    if state.status is not EpisodeStatus.ACTIVE or state.level is None:
        return []
    pending = state.pending_review
    if pending is not None:
        if pending.escalated:
            return []
        return [Due(EscalateReview(pending.review_id), pending.due_at + day * policy.review_escalate_after_days)]
    remaining = day * (state.review_after_days or 0) - stay_elapsed(state, now)
    at = now + max(remaining, timedelta(0))
    if state.level is LevelOfCare.AFTERCARE:
        return [Due(CompleteAftercare(), at)]
    return [Due(RequestReview(f"review-{state.version + 1}"), at)]


def _testing_clock(state: Episode, policy: Policy, now: datetime) -> list[Due]:
    if state.status is not EpisodeStatus.ACTIVE or state.level is None:
        return []
    due: list[Due] = []
    if policy.drug_testing.per_week.get(state.level, 0) > 0:
        if state.schedule_level is not state.level or state.schedule_window_end is None:
            due.append(Due(DrawTestSchedule(), now))
        elif not state.planned_tests:
            due.append(Due(DrawTestSchedule(), max(now, state.schedule_window_end)))
    if state.planned_tests and state.schedule_level is state.level:
        due.append(Due(OrderScheduledTest(), state.planned_tests[0]))
    for test in state.tests:
        if test.awaiting_result and not test.overdue:
            due.append(Due(MarkResultOverdue(test.test_id), test.result_due_at))
    pending = state.pending_step_up
    if (
        pending is not None
        and pending.due_at is not None
        and Flag(FlagFamily.STEP_UP_REVIEW_OVERDUE) not in state.flags
    ):
        due.append(Due(EscalateStepUpReview(pending.test_id), pending.due_at))
    return due


def _aftercare_clock(state: Episode, policy: Policy) -> list[Due]:
    """Follow-ups when they fall due (aftercare's only during aftercare); partners that have not answered."""
    if state.status is EpisodeStatus.CLOSED:
        return []
    if state.status is EpisodeStatus.ON_HOLD and policy.hold_pauses_clocks:
        return []  # every clock waits for the resumption, which moves the dues by the time held
    due: list[Due] = []
    if state.status is EpisodeStatus.ACTIVE:
        due += [
            Due(RequestFollowUp(f.follow_up_id), f.due_at)
            for f in state.follow_ups
            if f.requested_at is None and (f.kind is FollowUpKind.AFTER_LEAVING or state.level is LevelOfCare.AFTERCARE)
        ]
    due += [
        Due(FlagReferralUnanswered(r.referral_id), r.answer_due_at)
        for r in state.referrals
        if r.status is ReferralStatus.ISSUED
        and r.answer_due_at is not None
        and Flag(FlagFamily.REFERRAL_UNANSWERED, r.referral_id) not in state.flags
    ]
    return due
