"""What a recorded episode tells a simulation: the outside inputs (as the commands that recorded them), the
instants the episode's clock acted at, and the schedule draws it made.

Events record what happened, not the command; each outside command is recovered from the event it leads
with (`AssessmentRecorded` -> `RecordAssessment`, `TestResultRecorded` -> `RecordTestResult`, ...), reading
the recorded stay's clock where the command's values are not in the event itself (the days an `extend` gave).
Consequences (a placement, a step-up, a retest, referrals) are left out: the simulated policy decides them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from continuum.domain.authorizations import AuthorizationDecision
from continuum.domain.commands import (
    MOVING_COMMANDS,
    CancelSession,
    CancelTest,
    ChangeMedications,
    Command,
    DecideStepUp,
    Discharge,
    FlagLabNotNotified,
    FlagReferralNotSent,
    OpenEpisode,
    OrderTest,
    OverridePlacement,
    PutOnHold,
    RecordAssessment,
    RecordAttendance,
    RecordAuthorizationDecision,
    RecordConcurrentReview,
    RecordConsent,
    RecordFollowUpOutcome,
    RecordMissedSession,
    RecordPlanReview,
    RecordReEngagementReview,
    RecordReviewOutcome,
    RecordSpecimenCollection,
    RecordTestResult,
    RecordTreatmentPlan,
    RequestAuthorization,
    Resume,
    ReverseStepUp,
    RevokeConsent,
    ScheduleSession,
    TransferEpisode,
    UpdateReferral,
)
from continuum.domain.episode import DischargeReason, EpisodeStatus, ReviewOutcome
from continuum.domain.events import (
    AssessmentRecorded,
    AuthorizationDecided,
    AuthorizationExtended,
    AuthorizationRequested,
    CareWeekClosed,
    ConcurrentReviewEscalated,
    ConcurrentReviewRecorded,
    ConcurrentReviewRequested,
    ConsentRecorded,
    ConsentRevoked,
    DomainEvent,
    EpisodeClosed,
    EpisodeOpened,
    EpisodePutOnHold,
    EpisodeResumed,
    EpisodeTransferred,
    FlagRaised,
    FollowUpRecorded,
    FollowUpRequested,
    LevelChanged,
    LevelChangeDecided,
    MedicationsChanged,
    PlacementOverridden,
    ReEngagementReviewed,
    ReEngagementReviewEscalated,
    ReferralStatusChanged,
    ReviewCompleted,
    ReviewEscalated,
    ReviewRequested,
    SessionAttended,
    SessionCancelled,
    SessionMissed,
    SessionScheduled,
    SpecimenCollected,
    StayStarted,
    StepUpReversed,
    StepUpReviewDecided,
    TestCancelled,
    TestOrdered,
    TestResultCorrected,
    TestResultOverdue,
    TestResultRecorded,
    TestScheduleDrawn,
    TreatmentPlanEscalated,
    TreatmentPlanRecorded,
    TreatmentPlanReviewed,
    WaitlistEntered,
)
from continuum.domain.flags import FlagFamily
from continuum.domain.levels import LevelOfCare
from continuum.domain.services import CancelReason, MissReason
from continuum.domain.testing import OrderReason, ScheduleDraw

DAYS_PRECISION = 6  # an `extend`'s days, recovered from a float sum, are rounded to this many decimals

TickKey = tuple[str, str | None]  # a clock command's type name, and what it is about (a review, a test, a level)


@dataclass(frozen=True)
class Input:
    """One outside input: the command another service (or a person) sent, and when it was decided.

    `test_id` / `review_level` name what the command refers to in the *recorded* episode, for the simulation
    to find its counterpart (a test it ordered at the same instant, a review it requested at the same level)."""

    command: Command
    at: datetime
    test_id: str | None = None
    review_level: LevelOfCare | None = None
    seq: int = 0  # the place of its first event in the record (which went first at the same instant)


@dataclass(frozen=True)
class TestIdentity:
    """What makes a recorded test the same test in a simulation: why and when it was ordered."""

    __test__ = False
    reason: OrderReason
    ordered_at: datetime


@dataclass
class RecordedEpisode:
    """An episode's record as a simulation reads it."""

    episode_id: str
    inputs: list[Input] = field(default_factory=list)
    ticks: dict[TickKey, list[tuple[datetime, int]]] = field(default_factory=dict)  # (instant, place), in order
    draws: dict[tuple[LevelOfCare, datetime], ScheduleDraw] = field(default_factory=dict)
    tests: dict[str, TestIdentity] = field(default_factory=dict)
    lab_id: str | None = None  # the lab the episode's scheduled orders went to (the workflow's configured lab)
    day: timedelta | None = None  # the care-clock day its draws counted in, if it drew a schedule
    end: datetime | None = None  # the last instant on record


@dataclass
class StayClock:
    """The little of the recorded state recovery reads (the stay's care-clock time, the pending review's
    level), kept without folding every event: the same rules as `fold` and `stay_elapsed` for these fields."""

    level: LevelOfCare | None = None
    level_since: datetime | None = None
    held_seconds: float = 0.0
    status: EpisodeStatus = EpisodeStatus.INTAKE
    status_since: datetime | None = None
    review_after_days: float | None = None
    pending_review_level: LevelOfCare | None = None

    def elapsed(self, at: datetime) -> timedelta:
        if self.level_since is None:
            return timedelta(0)
        until = at if self.status is EpisodeStatus.ACTIVE or self.status_since is None else self.status_since
        return max(timedelta(0), until - self.level_since - timedelta(seconds=self.held_seconds))

    def follow(self, event: DomainEvent) -> None:
        at = event.occurred_at
        match event:
            case StayStarted() | LevelChanged():
                self.level = event.level if isinstance(event, StayStarted) else event.to_level
                self.level_since, self.held_seconds, self.review_after_days = at, 0.0, event.review_after_days
                if isinstance(event, StayStarted):
                    self.status, self.status_since = EpisodeStatus.ACTIVE, at
                self.pending_review_level = None
            case EpisodePutOnHold():
                self.status, self.status_since = EpisodeStatus.ON_HOLD, at
            case EpisodeResumed():
                self.status, self.status_since = EpisodeStatus.ACTIVE, at
                self.held_seconds += event.held_seconds
            case EpisodeClosed():
                self.status, self.status_since, self.pending_review_level = EpisodeStatus.CLOSED, at, None
            case ReviewRequested():
                self.pending_review_level = event.level
            case ReviewCompleted():
                self.pending_review_level = None
                if event.next_review_after_days is not None:
                    self.review_after_days = event.next_review_after_days


_TICK_FLAGS = {
    FlagFamily.STEP_UP_REVIEW_OVERDUE: "EscalateStepUpReview",
    FlagFamily.REFERRAL_UNANSWERED: "FlagReferralUnanswered",
    FlagFamily.POSSIBLE_DROPOUT: "FlagPossibleDropout",
}


def tick_of(event: DomainEvent, before: StayClock, day: timedelta) -> TickKey | None:
    """The clock command that recorded `event` first, with its subject; None for an event no clock records."""
    match event:
        case ReviewRequested(level=level):
            return "RequestReview", level.value
        case ReviewEscalated(review_id=review_id):
            return "EscalateReview", review_id
        case TestResultOverdue(test_id=test_id):
            return "MarkResultOverdue", test_id
        case FollowUpRequested(follow_up_id=follow_up_id):
            return "RequestFollowUp", follow_up_id
        case CareWeekClosed(week=week):
            return "CloseCareWeek", str(week)
        case TestScheduleDrawn(level=level):
            return "DrawTestSchedule", level.value
        case TestOrdered(reason=OrderReason.SCHEDULED, level=level):
            return "OrderScheduledTest", level.value
        case ReEngagementReviewEscalated():
            return "EscalateReEngagementReview", None
        case TreatmentPlanEscalated():
            return "EscalateTreatmentPlan", None
        case ConcurrentReviewRequested(authorization_id=authorization_id):
            return "RequestConcurrentReview", authorization_id
        case ConcurrentReviewEscalated(authorization_id=authorization_id):
            return "EscalateConcurrentReview", authorization_id
        case FlagRaised(flag=flag) if flag.family in _TICK_FLAGS:
            name = _TICK_FLAGS[flag.family]
            return name, flag.subject if name == "FlagReferralUnanswered" else None
        case EpisodeClosed() if _aftercare_completed(event, before, day):
            return "CompleteAftercare", None
    return None


def _aftercare_completed(closed: EpisodeClosed, before: StayClock, day: timedelta) -> bool:
    """An aftercare period that ran out closes the episode by the clock; a discharge is a person's decision."""
    if before.level is not LevelOfCare.AFTERCARE or closed.reason is not DischargeReason.COMPLETED:
        return False
    return closed.note == "" and before.elapsed(closed.occurred_at) >= day * (before.review_after_days or 0)


def recover(episode_id: str, events: Sequence[DomainEvent], day: timedelta) -> RecordedEpisode:
    """Read one episode's events (in order) into its outside inputs, clock instants and draws."""
    recorded = RecordedEpisode(episode_id)
    state = StayClock()
    previous: DomainEvent | None = None
    scheduled_seen = False
    for event in events:
        if isinstance(event, TestScheduleDrawn):
            recorded.day = timedelta(seconds=event.day_seconds)
            break
    day = recorded.day or day
    for seq, event in enumerate(events):
        key = tick_of(event, state, day)
        if key is not None:
            recorded.ticks.setdefault(key, []).append((event.occurred_at, seq))
        if isinstance(event, TestScheduleDrawn):
            draw = ScheduleDraw(
                event.level,
                event.window_start,
                event.window_days,
                event.eligible_days,
                event.weights,
                event.chosen_days,
            )
            recorded.draws[(event.level, event.window_start)] = draw
        elif isinstance(event, TestOrdered):
            recorded.tests[event.test_id] = TestIdentity(event.reason, event.occurred_at)
            if event.reason is OrderReason.SCHEDULED and not scheduled_seen:
                recorded.lab_id, scheduled_seen = event.lab_id, True
        if isinstance(event, WaitlistEntered) and recorded.inputs:
            recorded.inputs[-1] = _waiting_as_recorded(recorded.inputs[-1], event)
        found = None if key is not None else _input_of(event, state, previous, day)
        if found is not None:
            recorded.inputs.append(dataclasses.replace(found, seq=seq))
        state.follow(event)
        previous = event
        recorded.end = event.occurred_at
    return recorded


def _waiting_as_recorded(last: Input, waiting: WaitlistEntered) -> Input:
    """The input a waitlist entry followed, with the levels its facility could not take the client at then: every
    one but the interim level, so the simulation places the client where the record did."""
    if not isinstance(last.command, (RecordAssessment, OverridePlacement, TransferEpisode, *MOVING_COMMANDS)):
        return last
    unavailable = tuple(level for level in LevelOfCare if level is not waiting.interim_level)
    return dataclasses.replace(last, command=dataclasses.replace(last.command, unavailable=unavailable))


def _input_of(event: DomainEvent, state: StayClock, previous: DomainEvent | None, day: timedelta) -> Input | None:
    """The outside command `event` leads with, or None for a consequence (or a clock's event)."""
    at = event.occurred_at
    match event:
        case EpisodeOpened():
            opened = OpenEpisode(event.episode_id, event.client_id, event.previous_episode_id, None, event.facility_id)
            return Input(opened, at)
        case EpisodeTransferred():  # under the proposed policy, as the whole cohort is
            return Input(TransferEpisode(event.to_facility_id, event.reason, event.clinician), at)
        case AssessmentRecorded():
            return Input(RecordAssessment(event.ratings, event.assessed_by), at)
        case PlacementOverridden():
            return Input(OverridePlacement(event.actual_level, event.reason, event.note, event.clinician), at)
        case LevelChangeDecided():
            moved = OverridePlacement(event.to_level, event.reason, event.note, event.clinician, event.director)
            return Input(moved, at)
        case ReviewCompleted() if state.pending_review_level is not None:
            return Input(_review_outcome(event, state, day), at, review_level=state.pending_review_level)
        case EpisodePutOnHold():
            return Input(PutOnHold(event.reason), at)
        case EpisodeResumed():
            return Input(Resume(), at)
        case EpisodeClosed() if not isinstance(previous, FollowUpRecorded) or previous.occurred_at != at:
            return Input(Discharge(event.reason, event.note), at)
        case TestOrdered(reason=OrderReason.CLINICIAN):
            return Input(OrderTest(event.ordered_by, event.lab_id), at)
        case SpecimenCollected():
            collected = RecordSpecimenCollection(
                event.test_id, event.collected_at, event.observed, event.temperature_in_range, event.site
            )
            return Input(collected, at, event.test_id)
        case TestCancelled(cancelled_by=str() as cancelled_by):
            return Input(CancelTest(event.test_id, cancelled_by, event.reason), at, event.test_id)
        case TestResultRecorded():
            corrects = event.corrects_lab_reference if isinstance(event, TestResultCorrected) else None
            result = RecordTestResult(
                event.test_id,
                event.result,
                event.method,
                event.collected_at,
                event.lab_reference,
                event.substances,
                corrects,
            )
            return Input(result, at, event.test_id)
        case MedicationsChanged():
            return Input(ChangeMedications(event.medications, event.changed_by), at)
        case StepUpReviewDecided():
            return Input(DecideStepUp(event.test_id, event.confirmed, event.clinician, event.note), at, event.test_id)
        case StepUpReversed():
            return Input(ReverseStepUp(event.test_id, event.clinician, event.reason), at, event.test_id)
        case FlagRaised(flag=flag) if flag.family is FlagFamily.LAB_NOT_NOTIFIED and flag.subject:
            return Input(FlagLabNotNotified(flag.subject), at, flag.subject)
        case FlagRaised(flag=flag) if flag.family is FlagFamily.REFERRAL_NOT_SENT and flag.subject:
            return Input(FlagReferralNotSent(flag.subject), at)
    return _aftercare_or_session_input(event)


def _aftercare_or_session_input(event: DomainEvent) -> Input | None:
    at = event.occurred_at
    match event:
        case ConsentRecorded():
            command: Command = RecordConsent(
                event.consent_id, event.recipient, event.purpose, event.expires_at, event.recorded_by
            )
        case ConsentRevoked():
            command = RevokeConsent(event.consent_id, event.revoked_by)
        case ReferralStatusChanged():
            command = UpdateReferral(event.referral_id, event.status, event.changed_by)
        case FollowUpRecorded():
            command = RecordFollowUpOutcome(event.follow_up_id, event.outcome, event.recorded_by)
        case SessionScheduled():
            command = ScheduleSession(event.session_id, event.kind, event.starts_at, event.minutes, event.scheduled_by)
        case SessionAttended():
            command = RecordAttendance(event.session_id, event.minutes, event.modality, event.recorded_by)
        case SessionMissed():
            command = RecordMissedSession(event.session_id, event.excused, MissReason(event.reason), event.recorded_by)
        case SessionCancelled():
            command = CancelSession(event.session_id, CancelReason(event.reason), event.cancelled_by)
        case ReEngagementReviewed():
            command = RecordReEngagementReview(event.clinician, event.note)
        case TreatmentPlanRecorded():
            command = RecordTreatmentPlan(event.problems, event.goals, event.signed_by, event.client_signed)
        case TreatmentPlanReviewed():
            command = RecordPlanReview(
                event.review_id, event.problems, event.goals, event.signed_by, event.client_signed
            )
        case _:
            return _authorization_input(event)
    return Input(command, at)


def _authorization_input(event: DomainEvent) -> Input | None:
    """The utilization reviewer's commands (the ids they name are minted in order, so a simulation mints the same)."""
    match event:
        case AuthorizationRequested():
            command: Command = RequestAuthorization(
                event.payer, event.level, event.unit, event.requested_units, event.requested_by
            )
        case AuthorizationDecided():
            command = RecordAuthorizationDecision(
                event.authorization_id,
                event.decision,
                event.decided_by,
                event.payer,
                event.authorization_number,
                event.start,
                event.end,
                event.approved_units,
                event.denial_reason,
            )
        case AuthorizationExtended():
            extended = AuthorizationDecision.EXTENDED
            number = event.authorization_number
            command = RecordAuthorizationDecision(
                event.authorization_id, extended, event.extended_by, None, number, None, event.end, event.added_units
            )
        case ConcurrentReviewRecorded():
            command = RecordConcurrentReview(event.authorization_id, event.outcome, event.reviewed_by, event.note)
        case _:
            return None
    return Input(command, event.occurred_at)


def _review_outcome(event: ReviewCompleted, state: StayClock, day: timedelta) -> RecordReviewOutcome:
    """The therapist's outcome; for `extend`, the days they gave (the event holds the stay day of the next review)."""
    days = None
    if event.outcome is ReviewOutcome.EXTEND and event.next_review_after_days is not None:
        elapsed = state.elapsed(event.occurred_at) / day
        days = round(event.next_review_after_days - elapsed, DAYS_PRECISION)
    return RecordReviewOutcome(event.review_id, event.outcome, event.therapist, days, event.goals_met)
