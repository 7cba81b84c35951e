"""The one fold: an episode's state is its events applied in order. Used by workflows, projections, audits."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import fields
from datetime import datetime, timedelta
from functools import cache, reduce
from typing import Any, TypeVar, cast

from continuum.domain.aftercare import Consent, FollowUp, FollowUpKind, FollowUpOutcome, Referral, ReferralStatus
from continuum.domain.authorizations import DECIDED, Authorization, AuthorizationDecision, ConcurrentReview
from continuum.domain.episode import (
    Episode,
    EpisodeStatus,
    HoldSpell,
    LevelSpell,
    PendingReview,
    PendingStepUp,
    StepUpRecord,
    Waitlisted,
)
from continuum.domain.errors import DomainError
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
    FlagCleared,
    FlagRaised,
    FollowUpRecorded,
    FollowUpRequested,
    FollowUpsScheduled,
    LevelChanged,
    LevelChangeDecided,
    MedicationsChanged,
    PlacementDecided,
    PlacementOverridden,
    ReEngagementReviewed,
    ReEngagementReviewEscalated,
    ReEngagementReviewRequested,
    ReferralAwaitingConsent,
    ReferralIssued,
    ReferralStatusChanged,
    ReviewCompleted,
    ReviewEscalated,
    ReviewRequested,
    SessionAttended,
    SessionCancelled,
    SessionMissed,
    SessionScheduled,
    SobrietyDateReset,
    SpecimenCollected,
    StayStarted,
    StepUpCancelled,
    StepUpPending,
    StepUpReversed,
    StepUpReviewDecided,
    TestCancelled,
    TestOrdered,
    TestResultOverdue,
    TestResultRecorded,
    TestScheduleDrawn,
    TreatmentPlanEscalated,
    TreatmentPlanRecorded,
    TreatmentPlanReviewed,
    WaitlistEntered,
)
from continuum.domain.flags import Flag, FlagFamily
from continuum.domain.levels import Direction, LevelOfCare
from continuum.domain.plans import TreatmentPlan
from continuum.domain.services import Session, SessionStatus
from continuum.domain.testing import DrugTest, OrderReason, ResultReport, TestMethod

# The flags without a subject, by their older names (domain.flags has the families).
REVIEW_OVERDUE = Flag(FlagFamily.REVIEW_OVERDUE)
STEP_UP_REVIEW_OVERDUE = Flag(FlagFamily.STEP_UP_REVIEW_OVERDUE)
BUPRENORPHINE_ABSENT = Flag(FlagFamily.BUPRENORPHINE_ABSENT)
PLAN_OVERDUE = Flag(FlagFamily.PLAN_OVERDUE)
SPECIMEN_TEMPERATURE = Flag(FlagFamily.SPECIMEN_TEMPERATURE)


def result_missing_flag(test_id: str) -> Flag:
    return Flag(FlagFamily.RESULT_MISSING, test_id)


class FoldError(DomainError):
    """An event that cannot follow the state before it (a history out of order, or from another episode)."""


def _with_flag(flags: tuple[Flag, ...], flag: Flag) -> tuple[Flag, ...]:
    return tuple(sorted({*flags, flag}))  # in the order of their spellings


def _without_flag(flags: tuple[Flag, ...], flag: Flag) -> tuple[Flag, ...]:
    return tuple(f for f in flags if f != flag)


R = TypeVar("R")


@cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls))


def replace(record: R, /, **changes: object) -> R:
    """`dataclasses.replace` for the state's frozen records, several times faster: it copies the fields
    rather than running `__init__` again (the records compute nothing at construction: no `__post_init__`,
    no `init=False` fields), which makes the fold, and so every replay and projection, cheaper."""
    cls: type = type(record)
    unknown = changes.keys() - _field_names(cls)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {sorted(unknown)[0]!r}")
    copy = cast(R, object.__new__(cls))
    attributes = copy.__dict__
    attributes.update(record.__dict__)
    attributes.update(changes)
    return copy


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
            previous_episode_id=event.previous_episode_id,
            facility_id=event.facility_id,
        )
    if event.episode_id != state.episode_id:
        raise FoldError(f"event for episode {event.episode_id} applied to episode {state.episode_id}")
    kind: type = type(event)
    rule = _rule_for(kind)
    if rule is None:
        raise FoldError(f"no rule folds {type(event).__name__}")
    return rule(replace(state, version=state.version + 1), event)


# -- the rules: one small function per event type, registered with `_folds` ----------------------------

Rule = Callable[[Episode, Any], Episode]
_RULES: dict[type[DomainEvent], Rule] = {}
F = TypeVar("F", bound=Rule)


def _folds(*event_types: type[DomainEvent]) -> Callable[[F], F]:
    def register(rule: F) -> F:
        for event_type in event_types:
            _RULES[event_type] = rule
        return rule

    return register


@cache
def _rule_for(event_type: type) -> Rule | None:
    """The rule of an event type, or of the nearest type it extends (a correction folds as a result)."""
    return next((_RULES[t] for t in event_type.__mro__ if t in _RULES), None)


@_folds(EpisodeOpened)
def _opened_again(state: Episode, event: EpisodeOpened) -> Episode:
    raise FoldError("an episode is opened only once")


@_folds(AssessmentRecorded)
def _assessed(state: Episode, event: AssessmentRecorded) -> Episode:
    return replace(state, ratings=tuple(event.ratings))


@_folds(PlacementDecided)
def _placed(state: Episode, event: PlacementDecided) -> Episode:
    return replace(
        state,
        recommended_level=event.recommended_level,
        after_withdrawal_level=event.after_withdrawal_level,
        placement_rules=tuple(event.rules_fired),
    )


@_folds(PlacementOverridden)
def _overridden(state: Episode, event: PlacementOverridden) -> Episode:
    return replace(state, override_reason=event.reason, placement_overrides=state.placement_overrides + 1)


@_folds(LevelChangeDecided)
def _level_change_decided(state: Episode, event: LevelChangeDecided) -> Episode:
    return state  # the LevelChanged that follows moves the client


@_folds(StayStarted)
def _stay_started(state: Episode, event: StayStarted) -> Episode:
    at = event.occurred_at
    return replace(
        state,
        status=EpisodeStatus.ACTIVE,
        status_since=at,
        level=event.level,
        level_since=at,
        stay_held_seconds=0.0,
        review_after_days=event.review_after_days,
        sobriety_since=state.sobriety_since or at,
        placed_at=at,
        level_spells=(*state.level_spells, LevelSpell(event.level, at)),
        plan_due_at=event.plan_due_at if state.plan is None else state.plan_due_at,
    )


@_folds(LevelChanged)
def _level_changed(state: Episode, event: LevelChanged) -> Episode:
    level = event.to_level
    stepped_up = event.cause_test_id is not None and event.direction is Direction.UP
    if event.from_level is LevelOfCare.AFTERCARE:  # aftercare's own follow-ups end with it
        kept = tuple(f for f in state.follow_ups if f.kind is not FollowUpKind.AFTERCARE or f.requested_at)
        state = replace(state, follow_ups=kept)
    return replace(
        state,
        moves=state.moves + 1,
        level=level,
        level_since=event.occurred_at,
        stay_held_seconds=0.0,
        review_after_days=event.review_after_days,
        pending_review=None,
        flags=_without_flag(state.flags, REVIEW_OVERDUE),
        schedule_level=None,
        schedule_window_end=None,
        planned_tests=(),
        pending_step_up=None,
        last_step_up=StepUpRecord(event.cause_test_id, event.from_level, level) if stepped_up else None,  # type: ignore[arg-type]
        level_spells=(*state.level_spells, LevelSpell(level, event.occurred_at)),
        waitlist=None if state.waitlist is None or state.waitlist.wanted_level is level else state.waitlist,
    )


@_folds(EpisodeTransferred)
def _transferred(state: Episode, event: EpisodeTransferred) -> Episode:
    return replace(state, facility_id=event.to_facility_id, waitlist=None)  # the new facility decides afresh


@_folds(WaitlistEntered)
def _waitlisted(state: Episode, event: WaitlistEntered) -> Episode:
    return replace(state, waitlist=Waitlisted(event.wanted_level, event.interim_level, event.occurred_at))


@_folds(ReviewRequested)
def _review_requested(state: Episode, event: ReviewRequested) -> Episode:
    pending = PendingReview(event.review_id, event.level, event.occurred_at, event.due_at)
    return replace(state, pending_review=pending)


@_folds(ReviewCompleted)
def _review_completed(state: Episode, event: ReviewCompleted) -> Episode:
    next_days = event.next_review_after_days
    return replace(
        state,
        pending_review=None,
        reviews_completed=state.reviews_completed + 1,
        review_after_days=next_days if next_days is not None else state.review_after_days,
        flags=_without_flag(state.flags, REVIEW_OVERDUE),
        plan=_with_goals_met(state.plan, event.goals_met),
    )


def _with_goals_met(plan: TreatmentPlan | None, goals_met: tuple[str, ...]) -> TreatmentPlan | None:
    if plan is None or not goals_met:
        return plan
    return replace(plan, goals_met=tuple(dict.fromkeys((*plan.goals_met, *goals_met))))


@_folds(ReviewEscalated)
def _review_escalated(state: Episode, event: ReviewEscalated) -> Episode:
    if state.pending_review is None:
        raise FoldError("a review was escalated that is not pending")
    return replace(
        state,
        pending_review=replace(state.pending_review, escalated=True),
        flags=_with_flag(state.flags, REVIEW_OVERDUE),
    )


@_folds(FlagRaised)
def _flag_raised(state: Episode, event: FlagRaised) -> Episode:
    return replace(state, flags=_with_flag(state.flags, event.flag))


@_folds(FlagCleared)
def _flag_cleared(state: Episode, event: FlagCleared) -> Episode:
    return replace(state, flags=_without_flag(state.flags, event.flag))


@_folds(EpisodePutOnHold)
def _put_on_hold(state: Episode, event: EpisodePutOnHold) -> Episode:
    return replace(
        state,
        status=EpisodeStatus.ON_HOLD,
        status_since=event.occurred_at,
        hold_reason=event.reason,
        hold_spells=(*state.hold_spells, HoldSpell(event.occurred_at)),
    )


@_folds(EpisodeResumed)
def _resumed(state: Episode, event: EpisodeResumed) -> Episode:
    held = event.held_seconds
    if event.clocks_moved:
        state = _dues_moved(state, timedelta(seconds=held))
    spells = state.hold_spells
    if spells and spells[-1].end is None:
        spells = (*spells[:-1], HoldSpell(spells[-1].start, event.occurred_at))
    return replace(
        state,
        hold_spells=spells,
        status=EpisodeStatus.ACTIVE,
        status_since=event.occurred_at,
        hold_reason=None,
        stay_held_seconds=state.stay_held_seconds + held,
    )


@_folds(TestScheduleDrawn)
def _schedule_drawn(state: Episode, event: TestScheduleDrawn) -> Episode:
    day = timedelta(seconds=event.day_seconds)
    return replace(
        state,
        schedule_level=event.level,
        schedule_window_end=event.window_start + day * event.window_days,
        planned_tests=tuple(event.window_start + day * d for d in sorted(event.chosen_days)),
    )


@_folds(TestOrdered)
def _test_ordered(state: Episode, event: TestOrdered) -> Episode:
    at = event.occurred_at
    test = DrugTest(
        event.test_id,
        event.reason,
        event.level,
        at,
        event.result_due_at,
        retest_of=event.retest_of,
        lab_id=event.lab_id,
    )
    planned = (
        tuple(p for p in state.planned_tests if p > at)
        if event.reason is OrderReason.SCHEDULED
        else state.planned_tests
    )
    return replace(state, tests=(*state.tests, test), tests_ordered=state.tests_ordered + 1, planned_tests=planned)


@_folds(TestCancelled)
def _test_cancelled(state: Episode, event: TestCancelled) -> Episode:
    return _with_test(state, event.test_id, cancelled=True)


@_folds(SpecimenCollected)
def _specimen_collected(state: Episode, event: SpecimenCollected) -> Episode:
    return _with_test(
        state,
        event.test_id,
        collected_at=event.collected_at,
        observed=event.observed,
        temperature_in_range=event.temperature_in_range,
    )


@_folds(TestResultRecorded)  # a correction too: it replaces the report it corrects
def _result_recorded(state: Episode, event: TestResultRecorded) -> Episode:
    report = ResultReport(
        event.result,
        tuple(event.substances),
        event.method,
        event.collected_at,
        event.lab_reference,
        event.counts_as_positive,
    )
    slot = "confirmed" if event.method is TestMethod.CONFIRMED else "presumptive"
    state = replace(state, flags=_without_flag(state.flags, result_missing_flag(event.test_id)))
    return _with_test(state, event.test_id, **{slot: report})


@_folds(TestResultOverdue)
def _result_overdue(state: Episode, event: TestResultOverdue) -> Episode:
    state = replace(state, flags=_with_flag(state.flags, result_missing_flag(event.test_id)))
    return _with_test(state, event.test_id, overdue=True)


@_folds(MedicationsChanged)
def _medications_changed(state: Episode, event: MedicationsChanged) -> Episode:
    return replace(state, medications=tuple(event.medications))


@_folds(SobrietyDateReset)
def _sobriety_date_reset(state: Episode, event: SobrietyDateReset) -> Episode:
    return replace(state, sobriety_since=event.occurred_at)


@_folds(StepUpPending)
def _step_up_pending(state: Episode, event: StepUpPending) -> Episode:
    pending = PendingStepUp(event.test_id, event.waiting_for, event.target_level, event.due_at)
    return replace(state, pending_step_up=pending)


@_folds(StepUpReviewDecided, StepUpCancelled)
def _step_up_settled(state: Episode, event: StepUpReviewDecided | StepUpCancelled) -> Episode:
    return replace(state, pending_step_up=None, flags=_without_flag(state.flags, STEP_UP_REVIEW_OVERDUE))


@_folds(StepUpReversed)
def _step_up_reversed(state: Episode, event: StepUpReversed) -> Episode:
    return replace(state, last_step_up=None)


@_folds(ConsentRecorded)
def _consent_recorded(state: Episode, event: ConsentRecorded) -> Episode:
    consent = Consent(event.consent_id, event.recipient, event.purpose, event.occurred_at, event.expires_at)
    return replace(state, consents=(*state.consents, consent))


@_folds(ConsentRevoked)
def _consent_revoked(state: Episode, event: ConsentRevoked) -> Episode:
    if state.consent(event.consent_id) is None:
        raise FoldError(f"no consent {event.consent_id} was recorded")
    at = event.occurred_at
    consents = tuple(replace(c, revoked_at=at) if c.consent_id == event.consent_id else c for c in state.consents)
    return replace(state, consents=consents)


@_folds(ReferralAwaitingConsent)
def _referral_awaiting_consent(state: Episode, event: ReferralAwaitingConsent) -> Episode:
    referral = Referral(
        event.referral_id,
        event.resource_id,
        event.resource_type,
        event.recipient,
        ReferralStatus.AWAITING_CONSENT,
        event.occurred_at,
        alternative_of=event.alternative_of,
    )
    return replace(state, referrals=(*state.referrals, referral))


@_folds(ReferralIssued)
def _referral_issued(state: Episode, event: ReferralIssued) -> Episode:
    at = event.occurred_at
    if state.referral(event.referral_id) is not None:  # an awaiting referral got its consent
        return _with_referral(
            state, event.referral_id, status=ReferralStatus.ISSUED, issued_at=at, answer_due_at=event.answer_due_at
        )
    referral = Referral(
        event.referral_id,
        event.resource_id,
        event.resource_type,
        event.recipient,
        ReferralStatus.ISSUED,
        at,
        at,
        event.answer_due_at,
        event.alternative_of,
    )
    return replace(state, referrals=(*state.referrals, referral))


@_folds(ReferralStatusChanged)
def _referral_status_changed(state: Episode, event: ReferralStatusChanged) -> Episode:
    unanswered = Flag(FlagFamily.REFERRAL_UNANSWERED, event.referral_id)
    state = replace(state, flags=_without_flag(state.flags, unanswered))
    return _with_referral(state, event.referral_id, status=event.status)


@_folds(FollowUpsScheduled)
def _follow_ups_scheduled(state: Episode, event: FollowUpsScheduled) -> Episode:
    added = tuple(FollowUp(p.follow_up_id, p.kind, p.due_at) for p in event.follow_ups)
    return replace(
        state, follow_ups=(*state.follow_ups, *added), follow_ups_planned=state.follow_ups_planned + len(added)
    )


@_folds(FollowUpRequested)
def _follow_up_requested(state: Episode, event: FollowUpRequested) -> Episode:
    return _with_follow_up(state, event.follow_up_id, requested_at=event.occurred_at)


@_folds(FollowUpRecorded)
def _follow_up_recorded(state: Episode, event: FollowUpRecorded) -> Episode:
    in_a_row = state.not_reached_in_a_row + 1 if event.outcome is FollowUpOutcome.NOT_REACHED else 0
    state = replace(state, not_reached_in_a_row=in_a_row)
    return _with_follow_up(state, event.follow_up_id, outcome=event.outcome, recorded_at=event.occurred_at)


@_folds(SessionScheduled)
def _session_scheduled(state: Episode, event: SessionScheduled) -> Episode:
    session = Session(event.session_id, event.kind, event.starts_at, event.minutes, event.level)
    return replace(
        state, sessions=(*state.sessions, session), attendance_since=state.attendance_since or event.occurred_at
    )


@_folds(SessionAttended)
def _session_attended(state: Episode, event: SessionAttended) -> Episode:
    session = _session(state, event.session_id)
    last = state.last_attended_at
    state = replace(
        state,
        unexcused_misses_in_a_row=0,
        last_attended_at=session.starts_at if last is None or session.starts_at > last else last,
    )
    return _with_session(
        state, event.session_id, status=SessionStatus.ATTENDED, attended_minutes=event.minutes, modality=event.modality
    )


@_folds(SessionMissed)
def _session_missed(state: Episode, event: SessionMissed) -> Episode:
    in_a_row = state.unexcused_misses_in_a_row if event.excused else state.unexcused_misses_in_a_row + 1
    state = replace(state, unexcused_misses_in_a_row=in_a_row)
    return _with_session(
        state, event.session_id, status=SessionStatus.MISSED, excused=event.excused, reason=event.reason
    )


@_folds(SessionCancelled)
def _session_cancelled(state: Episode, event: SessionCancelled) -> Episode:
    return _with_session(state, event.session_id, status=SessionStatus.CANCELLED, reason=event.reason)


@_folds(CareWeekClosed)
def _care_week_closed(state: Episode, event: CareWeekClosed) -> Episode:
    return replace(state, weeks_closed=event.week)


@_folds(ReEngagementReviewRequested)
def _re_engagement_requested(state: Episode, event: ReEngagementReviewRequested) -> Episode:
    return replace(state, re_engagement_due_at=event.due_at, re_engagement_escalated=False)


@_folds(ReEngagementReviewEscalated)
def _re_engagement_escalated(state: Episode, event: ReEngagementReviewEscalated) -> Episode:
    return replace(state, re_engagement_escalated=True)


@_folds(ReEngagementReviewed)
def _re_engagement_reviewed(state: Episode, event: ReEngagementReviewed) -> Episode:
    return replace(state, unexcused_misses_in_a_row=0, re_engagement_due_at=None, re_engagement_escalated=False)


@_folds(TreatmentPlanRecorded)
def _plan_recorded(state: Episode, event: TreatmentPlanRecorded) -> Episode:
    plan = TreatmentPlan(
        tuple(event.problems), tuple(event.goals), event.occurred_at, event.signed_by, event.client_signed
    )
    return replace(state, plan=plan, plan_due_at=event.next_review_due_at, plan_escalated=False)


@_folds(TreatmentPlanReviewed)
def _plan_reviewed(state: Episode, event: TreatmentPlanReviewed) -> Episode:
    if state.plan is None:
        raise FoldError("a treatment plan was reviewed before any was recorded")
    plan = replace(
        state.plan,
        problems=tuple(event.problems),
        goals=tuple(event.goals),
        signed_by=event.signed_by,
        client_signed=event.client_signed,
        reviews=state.plan.reviews + 1,
        last_review_id=event.review_id,
        reviewed_at=event.occurred_at,
    )
    return replace(state, plan=plan, plan_due_at=event.next_review_due_at, plan_escalated=False)


@_folds(TreatmentPlanEscalated)
def _plan_escalated(state: Episode, event: TreatmentPlanEscalated) -> Episode:
    return replace(state, plan_escalated=True)


@_folds(AuthorizationRequested)
def _authorization_requested(state: Episode, event: AuthorizationRequested) -> Episode:
    requested = Authorization(
        event.authorization_id,
        event.payer,
        event.level,
        event.unit,
        event.requested_units,
        event.occurred_at,
        event.requested_by,
    )
    return replace(state, authorizations=(*state.authorizations, requested))


@_folds(AuthorizationDecided)
def _authorization_decided(state: Episode, event: AuthorizationDecided) -> Episode:
    if event.decision is AuthorizationDecision.EXTENDED:
        raise FoldError("an extension is recorded as AuthorizationExtended")
    return _with_authorization(
        state,
        event.authorization_id,
        status=DECIDED[event.decision],
        authorization_number=event.authorization_number,
        start=event.start,
        end=event.end,
        approved_units=event.approved_units,
        denial_reason=event.denial_reason,
        decided_at=event.occurred_at,
    )


@_folds(AuthorizationExtended)
def _authorization_extended(state: Episode, event: AuthorizationExtended) -> Episode:
    authorization = state.authorization(event.authorization_id)
    if authorization is None or not authorization.approved:
        raise FoldError(f"authorization {event.authorization_id} was extended without an approval")
    return _with_authorization(
        state,
        event.authorization_id,
        end=event.end,
        approved_units=(authorization.approved_units or 0) + event.added_units,
        authorization_number=event.authorization_number or authorization.authorization_number,
        extensions=authorization.extensions + 1,
        concurrent_review=None,  # the extension closes the review pending for the old end
    )


@_folds(ConcurrentReviewRequested)
def _concurrent_review_requested(state: Episode, event: ConcurrentReviewRequested) -> Episode:
    review = ConcurrentReview(event.occurred_at, event.due_at)
    return _with_authorization(state, event.authorization_id, concurrent_review=review)


@_folds(ConcurrentReviewEscalated)
def _concurrent_review_escalated(state: Episode, event: ConcurrentReviewEscalated) -> Episode:
    review = _authorization(state, event.authorization_id).concurrent_review
    if review is None:
        raise FoldError(f"a concurrent review of {event.authorization_id} was escalated that is not pending")
    return _with_authorization(state, event.authorization_id, concurrent_review=replace(review, escalated=True))


@_folds(ConcurrentReviewRecorded)
def _concurrent_review_recorded(state: Episode, event: ConcurrentReviewRecorded) -> Episode:
    end = _authorization(state, event.authorization_id).end
    return _with_authorization(state, event.authorization_id, concurrent_review=None, reviewed_for_end=end)


def _authorization(state: Episode, authorization_id: str) -> Authorization:
    authorization = state.authorization(authorization_id)
    if authorization is None:
        raise FoldError(f"no authorization {authorization_id} was requested")
    return authorization


def _with_authorization(state: Episode, authorization_id: str, **changes: object) -> Episode:
    _authorization(state, authorization_id)
    authorizations = tuple(
        replace(a, **changes) if a.authorization_id == authorization_id else a for a in state.authorizations
    )
    return replace(state, authorizations=authorizations)


def _session(state: Episode, session_id: str) -> Session:
    session = state.session(session_id)
    if session is None:
        raise FoldError(f"no session {session_id} was scheduled")
    return session


def _with_session(state: Episode, session_id: str, **changes: object) -> Episode:
    _session(state, session_id)
    return replace(
        state, sessions=tuple(replace(s, **changes) if s.session_id == session_id else s for s in state.sessions)
    )


@_folds(EpisodeClosed)
def _closed(state: Episode, event: EpisodeClosed) -> Episode:
    at = event.occurred_at
    return replace(
        state,
        status=EpisodeStatus.CLOSED,
        status_since=at,
        discharge_reason=event.reason,
        closed_at=at,
        pending_review=None,
        hold_reason=None,
        # the review no longer pending is no longer overdue, nor is the plan (the log keeps when they were)
        flags=tuple(f for f in state.flags if Flag.parse(f).family not in _ENDS_WITH_THE_EPISODE),
        plan_due_at=None,
    )


_ENDS_WITH_THE_EPISODE = (
    FlagFamily.REVIEW_OVERDUE,
    FlagFamily.PLAN_OVERDUE,
    # nor is a level unauthorized, or a concurrent review overdue, once the stay is over
    FlagFamily.AUTHORIZATION_EXPIRED,
    FlagFamily.LEVEL_UNAUTHORIZED,
    FlagFamily.AUTHORIZED_LEVEL_MISMATCH,
    FlagFamily.CONCURRENT_REVIEW_OVERDUE,
)


def paused_dues(state: Episode) -> tuple[str, ...]:
    """What a hold has paused, in words: each due a resumption moves by the time held."""
    moved = []
    if state.pending_review is not None:
        moved.append(f"review {state.pending_review.review_id} due {state.pending_review.due_at.isoformat()}")
    if state.pending_step_up is not None and state.pending_step_up.due_at is not None:
        moved.append(
            f"step-up review for test {state.pending_step_up.test_id} due {state.pending_step_up.due_at.isoformat()}"
        )
    moved += [
        f"result of test {t.test_id} due {t.result_due_at.isoformat()}"
        for t in state.tests
        if t.awaiting_result and not t.overdue
    ]
    moved += [f"scheduled test at {p.isoformat()}" for p in state.planned_tests]
    moved += [
        f"answer to referral {r.referral_id} due {r.answer_due_at.isoformat()}"
        for r in state.referrals
        if r.status is ReferralStatus.ISSUED and r.answer_due_at is not None
    ]
    moved += [
        f"follow-up {f.follow_up_id} due {f.due_at.isoformat()}" for f in state.follow_ups if f.requested_at is None
    ]
    if state.re_engagement_due_at is not None and not state.re_engagement_escalated:
        moved.append(f"re-engagement review due {state.re_engagement_due_at.isoformat()}")
    if state.plan_due_at is not None and not state.plan_escalated:
        what = "treatment plan review" if state.plan is not None else "initial treatment plan"
        moved.append(f"{what} due {state.plan_due_at.isoformat()}")
    return tuple(moved)


def _dues_moved(state: Episode, held: timedelta) -> Episode:
    """Every due of the episode, later by the time held (the rule `paused_dues` names)."""
    review = state.pending_review
    step_up = state.pending_step_up
    return replace(
        state,
        pending_review=replace(review, due_at=review.due_at + held) if review else None,
        pending_step_up=replace(step_up, due_at=step_up.due_at + held) if step_up and step_up.due_at else step_up,
        tests=tuple(
            replace(t, result_due_at=t.result_due_at + held) if t.awaiting_result and not t.overdue else t
            for t in state.tests
        ),
        planned_tests=tuple(p + held for p in state.planned_tests),
        schedule_window_end=state.schedule_window_end + held if state.schedule_window_end else None,
        referrals=tuple(
            replace(r, answer_due_at=r.answer_due_at + held)
            if r.status is ReferralStatus.ISSUED and r.answer_due_at is not None
            else r
            for r in state.referrals
        ),
        follow_ups=tuple(replace(f, due_at=f.due_at + held) if f.requested_at is None else f for f in state.follow_ups),
        re_engagement_due_at=state.re_engagement_due_at + held
        if state.re_engagement_due_at is not None and not state.re_engagement_escalated
        else state.re_engagement_due_at,
        plan_due_at=state.plan_due_at + held
        if state.plan_due_at is not None and not state.plan_escalated
        else state.plan_due_at,
    )


def _with_test(state: Episode, test_id: str, **changes: object) -> Episode:
    if state.test(test_id) is None:
        raise FoldError(f"no test {test_id} was ordered")
    return replace(state, tests=tuple(replace(t, **changes) if t.test_id == test_id else t for t in state.tests))


def _with_referral(state: Episode, referral_id: str, **changes: object) -> Episode:
    if state.referral(referral_id) is None:
        raise FoldError(f"no referral {referral_id} was made")
    return replace(
        state, referrals=tuple(replace(r, **changes) if r.referral_id == referral_id else r for r in state.referrals)
    )


def _with_follow_up(state: Episode, follow_up_id: str, **changes: object) -> Episode:
    if state.follow_up(follow_up_id) is None:
        raise FoldError(f"no follow-up {follow_up_id} was planned")
    follow_ups = tuple(replace(f, **changes) if f.follow_up_id == follow_up_id else f for f in state.follow_ups)
    return replace(state, follow_ups=follow_ups)


def fold(events: Iterable[DomainEvent], state: Episode | None = None) -> Episode | None:
    return reduce(evolve, events, state)


def stay_elapsed(state: Episode, at: datetime) -> timedelta:
    """How long the current stay has run on the care clock (time on hold does not count)."""
    if state.level_since is None:
        return timedelta(0)
    until = state.status_since if state.status is not EpisodeStatus.ACTIVE else at
    return max(timedelta(0), until - state.level_since - timedelta(seconds=state.stay_held_seconds))
