"""Domain events: immutable, past tense, each with a schema version. Registered by type name.

Decision events carry `policy_version`: the hash of the policy they were made under.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from continuum.domain.aftercare import (
    Disclosure,
    FollowUpKind,
    FollowUpOutcome,
    PlannedFollowUp,
    ReferralStatus,
    ResourceType,
)
from continuum.domain.authorizations import (
    AuthorizationDecision,
    AuthorizationUnit,
    ConcurrentReviewOutcome,
    DenialReason,
)
from continuum.domain.episode import (
    DischargeReason,
    HoldReason,
    OverrideReason,
    ReviewOutcome,
    StepUpCancellation,
    StepUpWait,
    TedsDischarge,
)
from continuum.domain.flags import Flag
from continuum.domain.ids import ClientId, EpisodeId
from continuum.domain.levels import Direction, LevelOfCare
from continuum.domain.plans import PlanGoal, PlanProblem, PlanStage
from continuum.domain.services import Modality
from continuum.domain.testing import OrderReason, TestMethod, TestResult


@dataclass(frozen=True)
class DomainEvent:
    """Base of every event: which episode, and when it happened in the clinic's time."""

    SCHEMA_VERSION: ClassVar[int] = 1
    episode_id: EpisodeId
    occurred_at: datetime

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__


@dataclass(frozen=True)
class EpisodeOpened(DomainEvent):
    """A client's episode of care began at intake, awaiting assessment."""

    client_id: ClientId
    previous_episode_id: EpisodeId | None = None
    facility_id: str | None = None  # the facility it opened at (None: recorded before facilities, the default one)


@dataclass(frozen=True)
class AssessmentRecorded(DomainEvent):
    """The six ASAM dimension ratings, 0-4, in dimension order."""

    ratings: tuple[int, ...]
    assessed_by: str


@dataclass(frozen=True)
class PlacementDecided(DomainEvent):
    """The recommended level from the assessment, and the placement rules that fired."""

    recommended_level: LevelOfCare
    after_withdrawal_level: LevelOfCare | None
    rules_fired: tuple[str, ...]
    policy_version: str
    # Since this release: why, in words (the deciding rule or the baseline), and the six ratings it read, so a
    # reader needs no policy file. Events recorded before carry neither.
    decided_by: str = ""
    ratings: tuple[int, ...] = ()
    facility_id: str | None = None  # since facilities: the facility whose policy decided


@dataclass(frozen=True)
class PlacementOverridden(DomainEvent):
    """A clinician placed the client elsewhere than recommended; both levels stay on record."""

    recommended_level: LevelOfCare
    actual_level: LevelOfCare
    reason: OverrideReason
    note: str
    clinician: str


@dataclass(frozen=True)
class LevelChangeDecided(DomainEvent):
    """After the placement, a clinician moved the client outside a completion review or a drug test: up, with a
    coded reason; or down on the clinical director's decision (`director`), with a coded reason from the policy."""

    from_level: LevelOfCare
    to_level: LevelOfCare
    reason: OverrideReason
    note: str
    clinician: str
    director: str | None
    policy_version: str
    facility_id: str | None = None  # since facilities: the facility whose policy decided


@dataclass(frozen=True)
class EpisodeTransferred(DomainEvent):
    """The episode moved to another facility, for a reason; from now on `policy_version` (that facility's
    policy) decides."""

    from_facility_id: str | None  # None: the default facility of an episode opened before facilities
    to_facility_id: str
    reason: str
    clinician: str
    policy_version: str


@dataclass(frozen=True)
class WaitlistEntered(DomainEvent):
    """The facility could not take the client at the level decided (not offered, or full): the client waits for
    `wanted_level` and is placed at `interim_level` meanwhile; they leave the waitlist once placed at it."""

    facility_id: str | None
    wanted_level: LevelOfCare
    interim_level: LevelOfCare
    policy_version: str


@dataclass(frozen=True)
class StayStarted(DomainEvent):
    """The first stay of the episode began at `level`; a review is due at `review_after_days` of it."""

    level: LevelOfCare
    review_after_days: float
    policy_version: str
    # Since treatment plans (policy `[plans]`): when the initial plan is due. Events recorded before carry none.
    plan_due_at: datetime | None = None


@dataclass(frozen=True)
class LevelChanged(DomainEvent):
    """The client moved along the continuum; `cause` says what moved them (a review, an override, ...)."""

    from_level: LevelOfCare
    to_level: LevelOfCare
    direction: Direction
    cause: str
    review_after_days: float
    policy_version: str
    cause_test_id: str | None = None  # the drug test behind a step-up (or its reversal)
    cause_follow_up_id: str | None = None  # the follow-up whose `using` re-entered the client


@dataclass(frozen=True)
class ReviewRequested(DomainEvent):
    """The stay reached its review point: the therapist is asked for a completion review by `due_at`."""

    review_id: str
    level: LevelOfCare
    due_at: datetime
    policy_version: str


@dataclass(frozen=True)
class ReviewCompleted(DomainEvent):
    """The therapist recorded the outcome; on `extend`, the next review comes at `next_review_after_days`."""

    review_id: str
    outcome: ReviewOutcome
    therapist: str
    policy_version: str
    next_review_after_days: float | None = None
    goals_met: tuple[str, ...] = ()  # the treatment plan's goals a `goals_met` review found met


@dataclass(frozen=True)
class ReviewEscalated(DomainEvent):
    """The review was not done by its due date: the clinical director is alerted. It is never skipped."""

    review_id: str
    due_at: datetime
    policy_version: str


@dataclass(frozen=True)
class FlagRaised(DomainEvent):
    """Something the clinical director should see (an overdue review, a missing result, ...)."""

    flag: Flag
    reason: str


@dataclass(frozen=True)
class FlagCleared(DomainEvent):
    flag: Flag


@dataclass(frozen=True)
class EpisodePutOnHold(DomainEvent):
    """Clocks stop while the client is hospitalised, incarcerated or on leave."""

    reason: HoldReason


@dataclass(frozen=True)
class EpisodeResumed(DomainEvent):
    held_seconds: float
    # Since holds stop every clock: the dues moved later by `held_seconds`, each named ("review review-7 due
    # 2026-03-02T09:00:00Z"); False on events recorded before, when only the stay clock stopped.
    clocks_moved: bool = False
    moved: tuple[str, ...] = ()


@dataclass(frozen=True)
class EpisodeClosed(DomainEvent):
    reason: DischargeReason
    teds: TedsDischarge
    policy_version: str
    note: str = ""


@dataclass(frozen=True)
class TestScheduleDrawn(DomainEvent):
    """A random-interval draw, recorded whole so an auditor can see nobody was singled out: the window (day
    offsets from `window_start`), every eligible day with its weight, and the days chosen."""

    __test__ = False
    level: LevelOfCare
    window_start: datetime
    window_days: int
    eligible_days: tuple[int, ...]
    weights: tuple[float, ...]
    chosen_days: tuple[int, ...]
    day_seconds: float  # the length of a care-clock day the offsets count in
    policy_version: str


@dataclass(frozen=True)
class TestOrdered(DomainEvent):
    """The collection site and lab are told; a result is expected by `result_due_at`."""

    __test__ = False
    test_id: str
    reason: OrderReason
    level: LevelOfCare
    result_due_at: datetime
    ordered_by: str
    policy_version: str
    retest_of: str | None = None
    lab_id: str | None = None  # the lab the order was sent to: only it may report the result


@dataclass(frozen=True)
class SpecimenCollected(DomainEvent):
    """The collection site took the specimen: whether collection was observed, and whether the specimen's
    temperature was in range (out of range suggests a substituted specimen)."""

    test_id: str
    collected_at: datetime
    observed: bool
    temperature_in_range: bool
    site: str


@dataclass(frozen=True)
class TestCancelled(DomainEvent):
    """A test that will have no result, and who cancelled it (None on version-1 events, which did not say)."""

    __test__ = False
    SCHEMA_VERSION: ClassVar[int] = 2
    test_id: str
    reason: str
    cancelled_by: str | None


@dataclass(frozen=True)
class TestResultRecorded(DomainEvent):
    """A result as reported, and how the policy reads it (`counts_as_positive`, `interpretation`)."""

    __test__ = False
    test_id: str
    result: TestResult
    substances: tuple[str, ...]
    method: TestMethod | None  # None (and no collection time) for a refusal or a no-show: there is no specimen
    collected_at: datetime | None
    lab_reference: str
    counts_as_positive: bool
    interpretation: str
    policy_version: str


@dataclass(frozen=True)
class TestResultCorrected(TestResultRecorded):
    """The lab corrected a report: this supersedes the one with `corrects_lab_reference`, which stays on record."""

    __test__ = False
    corrects_lab_reference: str


@dataclass(frozen=True)
class TestResultOverdue(DomainEvent):
    """No result arrived within the order's window: flagged for the clinical director."""

    __test__ = False
    test_id: str
    result_due_at: datetime


@dataclass(frozen=True)
class MedicationsChanged(DomainEvent):
    """The active medication list (MAT and other prescriptions), as substance names."""

    medications: tuple[str, ...]
    changed_by: str


@dataclass(frozen=True)
class SobrietyDateReset(DomainEvent):
    test_id: str | None = None  # the counting result that reset it
    follow_up_id: str | None = None  # or the follow-up that reported use


@dataclass(frozen=True)
class StepUpPending(DomainEvent):
    """A counting positive whose step-up waits: for the lab's confirmation, or for a clinician's review."""

    test_id: str
    waiting_for: StepUpWait
    target_level: LevelOfCare
    due_at: datetime | None
    policy_version: str


@dataclass(frozen=True)
class StepUpReviewDecided(DomainEvent):
    test_id: str
    confirmed: bool
    clinician: str
    note: str


@dataclass(frozen=True)
class StepUpCancelled(DomainEvent):
    """A pending step-up that will not happen (a negative confirmation, a corrected result)."""

    test_id: str
    reason: StepUpCancellation


@dataclass(frozen=True)
class StepUpReversed(DomainEvent):
    """A clinician reversed an automatic step-up, with a reason; the level change that follows restores it."""

    test_id: str
    clinician: str
    reason: str


@dataclass(frozen=True)
class ConsentRecorded(DomainEvent):
    """The client consented (42 CFR Part 2) to disclosures to `recipient` for `purpose` until `expires_at`."""

    consent_id: str
    recipient: str
    purpose: str
    expires_at: datetime
    recorded_by: str


@dataclass(frozen=True)
class ConsentRevoked(DomainEvent):
    """The client revoked a consent: nothing more is disclosed under it (what was disclosed stays disclosed)."""

    consent_id: str
    revoked_by: str


@dataclass(frozen=True)
class ReferralIssued(DomainEvent):
    """A referral was given to the client and, if `disclosure` is set, disclosed to its partner. An
    awaiting referral that gets its consent is issued under the same id."""

    referral_id: str
    resource_id: str
    resource_type: ResourceType
    recipient: str | None
    disclosure: Disclosure | None
    answer_due_at: datetime | None
    directory_version: str
    alternative_of: str | None = None


@dataclass(frozen=True)
class ReferralAwaitingConsent(DomainEvent):
    """A referral that would disclose to `recipient` waits for a consent for `purpose`; nothing was sent."""

    referral_id: str
    resource_id: str
    resource_type: ResourceType
    recipient: str
    purpose: str
    directory_version: str
    alternative_of: str | None = None


@dataclass(frozen=True)
class ReferralStatusChanged(DomainEvent):
    referral_id: str
    status: ReferralStatus
    changed_by: str


@dataclass(frozen=True)
class FollowUpsScheduled(DomainEvent):
    """Follow-ups planned on leaving residential or withdrawal management, or on entering aftercare."""

    kind: FollowUpKind
    follow_ups: tuple[PlannedFollowUp, ...]
    policy_version: str


@dataclass(frozen=True)
class FollowUpRequested(DomainEvent):
    follow_up_id: str
    kind: FollowUpKind


@dataclass(frozen=True)
class FollowUpRecorded(DomainEvent):
    follow_up_id: str
    outcome: FollowUpOutcome
    recorded_by: str


@dataclass(frozen=True)
class SessionScheduled(DomainEvent):
    """A session of treatment was scheduled, of a kind the policy names, at the client's level then."""

    session_id: str
    kind: str
    starts_at: datetime
    minutes: int
    level: LevelOfCare | None
    scheduled_by: str


@dataclass(frozen=True)
class SessionAttended(DomainEvent):
    session_id: str
    minutes: int
    modality: Modality
    recorded_by: str


@dataclass(frozen=True)
class SessionMissed(DomainEvent):
    """The client missed a session, excused or not, with a coded reason."""

    session_id: str
    excused: bool
    reason: str
    recorded_by: str


@dataclass(frozen=True)
class SessionCancelled(DomainEvent):
    """The program cancelled a session: it counts neither for nor against the client."""

    session_id: str
    reason: str
    cancelled_by: str


@dataclass(frozen=True)
class CareWeekClosed(DomainEvent):
    """A care week's tally: minutes delivered (telehealth among them) against the level's minimum; a week
    with a hold has no minimum (`minimum_hours` None), nor does a 24-hour level."""

    week: int
    starts_at: datetime
    ends_at: datetime
    attended_minutes: int
    telehealth_minutes: int
    minimum_hours: float | None
    expected_hours: float | None
    policy_version: str


@dataclass(frozen=True)
class ReEngagementReviewRequested(DomainEvent):
    """Non-attendance opened a re-engagement review for the clinician, due by `due_at` (never a discharge)."""

    due_at: datetime
    reason: str
    policy_version: str


@dataclass(frozen=True)
class ReEngagementReviewEscalated(DomainEvent):
    """The re-engagement review was not done by its due date: the clinical director is alerted."""

    due_at: datetime
    policy_version: str


@dataclass(frozen=True)
class ReEngagementReviewed(DomainEvent):
    """The clinician reviewed a client's non-attendance; closing the episode stays a separate decision."""

    clinician: str
    note: str


@dataclass(frozen=True)
class TreatmentPlanRecorded(DomainEvent):
    """The initial treatment plan, signed by `signed_by` (and by the client, or not); its first review is due by
    `next_review_due_at` (None at a level without plan reviews)."""

    problems: tuple[PlanProblem, ...]
    goals: tuple[PlanGoal, ...]
    signed_by: str
    client_signed: bool
    level: LevelOfCare | None
    next_review_due_at: datetime | None
    policy_version: str


@dataclass(frozen=True)
class TreatmentPlanReviewed(DomainEvent):
    """A review of the plan: its problems and goals as revised, who signed it; the next review is due then."""

    review_id: str
    problems: tuple[PlanProblem, ...]
    goals: tuple[PlanGoal, ...]
    signed_by: str
    client_signed: bool
    level: LevelOfCare | None
    next_review_due_at: datetime | None
    policy_version: str


@dataclass(frozen=True)
class TreatmentPlanEscalated(DomainEvent):
    """The initial plan (`stage` "initial") or its review ("review") was not done by `due_at`: the clinical director
    is alerted. It is never skipped."""

    stage: PlanStage
    due_at: datetime
    policy_version: str


@dataclass(frozen=True)
class AuthorizationRequested(DomainEvent):
    """The utilization reviewer asked `payer` to authorize `level` for `requested_units` days or units; the
    request's id was minted here (`Numbered.AUTHORIZATION`)."""

    authorization_id: str
    payer: str
    level: LevelOfCare
    unit: AuthorizationUnit
    requested_units: int
    requested_by: str


@dataclass(frozen=True)
class AuthorizationDecided(DomainEvent):
    """The payer's answer to a request: approved or partially approved (its number, period and units), or
    denied with a coded reason."""

    authorization_id: str
    decision: AuthorizationDecision
    payer: str
    authorization_number: str | None
    start: datetime | None
    end: datetime | None
    approved_units: int | None
    denial_reason: DenialReason | None
    decided_by: str
    policy_version: str


@dataclass(frozen=True)
class AuthorizationExtended(DomainEvent):
    """The payer extended an approved authorization to `end`, with `added_units` more days or units; a
    concurrent review pending for it is closed by the extension."""

    authorization_id: str
    previous_end: datetime
    end: datetime
    added_units: int
    authorization_number: str | None
    extended_by: str
    policy_version: str


@dataclass(frozen=True)
class ConcurrentReviewRequested(DomainEvent):
    """The authorization ends within the policy's days: the utilization reviewer is asked for a concurrent
    review by `due_at` (the authorization's end)."""

    authorization_id: str
    due_at: datetime
    policy_version: str


@dataclass(frozen=True)
class ConcurrentReviewEscalated(DomainEvent):
    """The concurrent review was not recorded by its due date: the clinical director is alerted."""

    authorization_id: str
    due_at: datetime
    policy_version: str


@dataclass(frozen=True)
class ConcurrentReviewRecorded(DomainEvent):
    """The utilization reviewer's concurrent review of an authorization, and what it concluded."""

    authorization_id: str
    outcome: ConcurrentReviewOutcome
    reviewed_by: str
    note: str


EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.type_name(): cls
    for cls in (
        EpisodeOpened,
        AssessmentRecorded,
        PlacementDecided,
        PlacementOverridden,
        LevelChangeDecided,
        EpisodeTransferred,
        WaitlistEntered,
        StayStarted,
        LevelChanged,
        ReviewRequested,
        ReviewCompleted,
        ReviewEscalated,
        FlagRaised,
        FlagCleared,
        EpisodePutOnHold,
        EpisodeResumed,
        EpisodeClosed,
        TestScheduleDrawn,
        TestOrdered,
        SpecimenCollected,
        TestCancelled,
        TestResultRecorded,
        TestResultCorrected,
        TestResultOverdue,
        MedicationsChanged,
        SobrietyDateReset,
        StepUpPending,
        StepUpReviewDecided,
        StepUpCancelled,
        StepUpReversed,
        ConsentRecorded,
        ConsentRevoked,
        ReferralIssued,
        ReferralAwaitingConsent,
        ReferralStatusChanged,
        FollowUpsScheduled,
        FollowUpRequested,
        FollowUpRecorded,
        SessionScheduled,
        SessionAttended,
        SessionMissed,
        SessionCancelled,
        CareWeekClosed,
        ReEngagementReviewRequested,
        ReEngagementReviewEscalated,
        ReEngagementReviewed,
        TreatmentPlanRecorded,
        TreatmentPlanReviewed,
        TreatmentPlanEscalated,
        AuthorizationRequested,
        AuthorizationDecided,
        AuthorizationExtended,
        ConcurrentReviewRequested,
        ConcurrentReviewEscalated,
        ConcurrentReviewRecorded,
    )
}
