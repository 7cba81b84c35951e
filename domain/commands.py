"""Commands: what a service or the episode's own clock asks of an episode. Imperative names.

`COMMANDS` is the catalogue of those other services send: each by its wire name, the name of the Temporal
update that carries it to the episode's workflow. The workflow, the client and the API all look commands
up there, so a command is declared once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from continuum.domain.aftercare import FollowUpOutcome, ReferralStatus
from continuum.domain.authorizations import (
    AuthorizationDecision,
    AuthorizationUnit,
    ConcurrentReviewOutcome,
    DenialReason,
)
from continuum.domain.episode import DischargeReason, HoldReason, OverrideReason, ReviewOutcome
from continuum.domain.levels import LevelOfCare
from continuum.domain.plans import PlanGoal, PlanProblem
from continuum.domain.services import CancelReason, MissReason, Modality
from continuum.domain.testing import ScheduleDraw, TestMethod, TestResult

MAX_NOTE = 2000  # the longest note or reason a command may carry
MAX_CANCELLATION_REASON = 500  # the longest reason a test is cancelled for


@dataclass(frozen=True)
class RecordAssessment:
    ratings: tuple[int, ...]  # the six ASAM dimensions, 0-4, in order
    assessed_by: str
    # The levels the episode's facility cannot take the client at now (not offered, or full), as the API counted
    # them from the projection when it accepted the command: a placement there records a waitlist entry.
    unavailable: tuple[LevelOfCare, ...] = ()


@dataclass(frozen=True)
class OpenEpisode:
    episode_id: str
    client_id: str
    previous_episode_id: str | None = None
    assessment: RecordAssessment | None = None
    facility_id: str | None = None  # where the episode opens (the API names the default facility if not told)


@dataclass(frozen=True)
class TransferEpisode:
    """Move the episode to another facility; from then on its policy decides. The sender fills in the new
    facility's program (policy and directory texts, lab) and the levels it cannot take the client at now."""

    facility_id: str
    reason: str
    clinician: str
    policy_text: str | None = None
    directory_text: str | None = None
    lab_id: str | None = None
    unavailable: tuple[LevelOfCare, ...] = ()


@dataclass(frozen=True)
class OverridePlacement:
    """Place the client elsewhere than recommended; after the placement, move them up, or (on the clinical
    director's decision, naming the director) down outside a completion review."""

    level: LevelOfCare
    reason: OverrideReason
    note: str
    clinician: str
    director: str | None = None  # the clinical director whose decision a step down after the placement is
    unavailable: tuple[LevelOfCare, ...] = ()  # as RecordAssessment's: a move there waits at an interim level


@dataclass(frozen=True)
class RecordReviewOutcome:
    review_id: str
    outcome: ReviewOutcome
    therapist: str
    next_review_in_days: float | None = None  # with `extend`; the policy's default otherwise
    goals_met: tuple[str, ...] = ()  # with `goals_met`: the treatment plan's goals the review found met
    # The levels the episode's facility cannot take the client at now (the API counts them when it accepts the
    # command): a move there the command brings (a step-up, a step-down, a re-entry) waits at an interim level.
    unavailable: tuple[LevelOfCare, ...] = ()


@dataclass(frozen=True)
class PutOnHold:
    reason: HoldReason


@dataclass(frozen=True)
class Resume:
    pass


@dataclass(frozen=True)
class Discharge:
    reason: DischargeReason
    note: str = ""


@dataclass(frozen=True)
class OrderTest:
    """A clinician orders an unscheduled test now."""

    ordered_by: str
    lab_id: str | None = None  # filled in by the workflow from its configuration


@dataclass(frozen=True)
class RecordTestResult:
    test_id: str
    result: TestResult
    method: TestMethod | None  # a refusal or a no-show has no specimen: no method and no collection time
    collected_at: datetime | None
    lab_reference: str
    substances: tuple[str, ...] = ()
    corrects_lab_reference: str | None = None  # a lab correction supersedes the report with this reference
    # The levels the episode's facility cannot take the client at now (the API counts them when it accepts the
    # command): a move there the command brings (a step-up, a step-down, a re-entry) waits at an interim level.
    unavailable: tuple[LevelOfCare, ...] = ()


@dataclass(frozen=True)
class RecordSpecimenCollection:
    test_id: str
    collected_at: datetime
    observed: bool
    temperature_in_range: bool
    site: str


@dataclass(frozen=True)
class CancelTest:
    test_id: str
    cancelled_by: str
    reason: str


@dataclass(frozen=True)
class ChangeMedications:
    medications: tuple[str, ...]  # substance names: the whole active list (MAT and other prescriptions)
    changed_by: str


@dataclass(frozen=True)
class DecideStepUp:
    """A clinician's answer to a step-up review (policy `positive_result_action = "review"`)."""

    test_id: str
    confirm: bool
    clinician: str
    note: str = ""


@dataclass(frozen=True)
class ReverseStepUp:
    test_id: str
    clinician: str
    reason: str


@dataclass(frozen=True)
class RecordConsent:
    consent_id: str
    recipient: str  # the partner id disclosures go to
    purpose: str
    expires_at: datetime
    recorded_by: str


@dataclass(frozen=True)
class RevokeConsent:
    consent_id: str
    revoked_by: str


@dataclass(frozen=True)
class UpdateReferral:
    """A partner's (or clinician's) answer: accepted, declined, completed."""

    referral_id: str
    status: ReferralStatus
    changed_by: str


@dataclass(frozen=True)
class RecordFollowUpOutcome:
    follow_up_id: str
    outcome: FollowUpOutcome
    recorded_by: str
    # The levels the episode's facility cannot take the client at now (the API counts them when it accepts the
    # command): a move there the command brings (a step-up, a step-down, a re-entry) waits at an interim level.
    unavailable: tuple[LevelOfCare, ...] = ()


@dataclass(frozen=True)
class ScheduleSession:
    """A session of treatment the program scheduled (the scheduling system or EHR sends it)."""

    session_id: str
    kind: str  # one of the policy's `services.kinds`
    starts_at: datetime
    minutes: int  # its scheduled length
    scheduled_by: str


@dataclass(frozen=True)
class RecordAttendance:
    session_id: str
    minutes: int  # attended: at most the session's length
    modality: Modality
    recorded_by: str


@dataclass(frozen=True)
class RecordMissedSession:
    session_id: str
    excused: bool
    reason: MissReason
    recorded_by: str


@dataclass(frozen=True)
class CancelSession:
    """The program cancelled the session: it counts neither for nor against the client."""

    session_id: str
    reason: CancelReason
    cancelled_by: str


@dataclass(frozen=True)
class RecordReEngagementReview:
    """The clinician's re-engagement review after a run of misses, low attendance or a possible drop-out; it
    closes the review (closing the episode stays a separate decision: a discharge)."""

    clinician: str
    note: str = ""


@dataclass(frozen=True)
class RecordTreatmentPlan:
    """The initial treatment plan: problems and goals by ASAM dimension, signed by a clinician (and the client,
    or not)."""

    problems: tuple[PlanProblem, ...]
    goals: tuple[PlanGoal, ...]
    signed_by: str
    client_signed: bool


@dataclass(frozen=True)
class RecordPlanReview:
    """A review of the treatment plan: the plan as revised (its problems and goals), and who signed it."""

    review_id: str
    problems: tuple[PlanProblem, ...]
    goals: tuple[PlanGoal, ...]
    signed_by: str
    client_signed: bool


@dataclass(frozen=True)
class RequestAuthorization:
    """The utilization reviewer asks a payer to authorize a level; the episode mints the request's id."""

    payer: str
    level: LevelOfCare
    unit: AuthorizationUnit
    requested_units: int
    requested_by: str


@dataclass(frozen=True)
class RecordAuthorizationDecision:
    """The payer's answer to a request (approved, partially approved, denied) or its extension of an approved
    one: for an approval, its number, period and units; for a denial, the coded reason; for an extension, the
    new end and the days or units added (`units`)."""

    authorization_id: str
    decision: AuthorizationDecision
    decided_by: str
    payer: str | None = None  # the request's payer, if named: it must be the one asked
    authorization_number: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    units: int | None = None
    denial_reason: DenialReason | None = None


@dataclass(frozen=True)
class RecordConcurrentReview:
    """The utilization reviewer's concurrent review of an authorization (it closes the review due before its end)."""

    authorization_id: str
    outcome: ConcurrentReviewOutcome
    reviewed_by: str
    note: str = ""


# Issued by the episode's own clock (the workflow's timers), never by another service.
@dataclass(frozen=True)
class RequestReview:
    review_id: str


@dataclass(frozen=True)
class EscalateReview:
    review_id: str


@dataclass(frozen=True)
class CompleteAftercare:
    pass


@dataclass(frozen=True)
class DrawTestSchedule:
    draw: ScheduleDraw | None = None  # the workflow fills it in with its own random generator


@dataclass(frozen=True)
class OrderScheduledTest:
    lab_id: str | None = None


@dataclass(frozen=True)
class MarkResultOverdue:
    test_id: str


@dataclass(frozen=True)
class EscalateStepUpReview:
    test_id: str


@dataclass(frozen=True)
class FlagLabNotNotified:
    test_id: str


@dataclass(frozen=True)
class RequestFollowUp:
    follow_up_id: str


@dataclass(frozen=True)
class FlagReferralUnanswered:
    referral_id: str


@dataclass(frozen=True)
class FlagReferralNotSent:
    referral_id: str


@dataclass(frozen=True)
class CloseCareWeek:
    """A care week ended: its hours are tallied against the level's minimum (policy `[services]`)."""

    week: int


@dataclass(frozen=True)
class FlagPossibleDropout:
    pass


@dataclass(frozen=True)
class EscalateReEngagementReview:
    pass


@dataclass(frozen=True)
class EscalateTreatmentPlan:
    """The initial plan, or the plan's review, is overdue (policy `[plans]`)."""


@dataclass(frozen=True)
class RequestConcurrentReview:
    """An authorization ends within the policy's days (`[utilization_review]`): its concurrent review falls due."""

    authorization_id: str


@dataclass(frozen=True)
class EscalateConcurrentReview:
    authorization_id: str


@dataclass(frozen=True)
class CheckAuthorizations:
    """An authorization began or ended at `at`: the flags comparing the clinical and authorized levels follow."""

    at: datetime


Command = (
    OpenEpisode
    | RecordAssessment
    | TransferEpisode
    | OverridePlacement
    | RecordReviewOutcome
    | PutOnHold
    | Resume
    | Discharge
    | OrderTest
    | RecordSpecimenCollection
    | RecordTestResult
    | CancelTest
    | ChangeMedications
    | DecideStepUp
    | ReverseStepUp
    | RequestReview
    | EscalateReview
    | CompleteAftercare
    | DrawTestSchedule
    | OrderScheduledTest
    | MarkResultOverdue
    | EscalateStepUpReview
    | FlagLabNotNotified
    | RecordConsent
    | RevokeConsent
    | UpdateReferral
    | RecordFollowUpOutcome
    | RequestFollowUp
    | FlagReferralUnanswered
    | FlagReferralNotSent
    | ScheduleSession
    | RecordAttendance
    | RecordMissedSession
    | CancelSession
    | RecordReEngagementReview
    | CloseCareWeek
    | FlagPossibleDropout
    | EscalateReEngagementReview
    | RecordTreatmentPlan
    | RecordPlanReview
    | EscalateTreatmentPlan
    | RequestAuthorization
    | RecordAuthorizationDecision
    | RecordConcurrentReview
    | RequestConcurrentReview
    | EscalateConcurrentReview
    | CheckAuthorizations
)
PLAN_COMMANDS = (RecordTreatmentPlan, RecordPlanReview, EscalateTreatmentPlan)
# The utilization reviewer's (recorded whatever the status, until closed) and the clock's
AUTHORIZATION_COMMANDS = (RequestAuthorization, RecordAuthorizationDecision, RecordConcurrentReview)
AUTHORIZATION_CLOCK_COMMANDS = (RequestConcurrentReview, EscalateConcurrentReview, CheckAuthorizations)
ATTENDANCE_COMMANDS = (
    ScheduleSession,
    RecordAttendance,
    RecordMissedSession,
    CancelSession,
    RecordReEngagementReview,
    CloseCareWeek,
    FlagPossibleDropout,
    EscalateReEngagementReview,
)
AFTERCARE_COMMANDS = (
    RecordConsent,
    RevokeConsent,
    UpdateReferral,
    RecordFollowUpOutcome,
    RequestFollowUp,
    FlagReferralUnanswered,
    FlagReferralNotSent,
)
# What a closed episode still accepts: a client may revoke a consent at any time (42 CFR 2.31).
AFTER_CLOSING = (RevokeConsent,)
TESTING_COMMANDS = (
    OrderTest,
    RecordSpecimenCollection,
    CancelTest,
    RecordTestResult,
    ChangeMedications,
    DecideStepUp,
    ReverseStepUp,
    DrawTestSchedule,
    OrderScheduledTest,
    MarkResultOverdue,
    EscalateStepUpReview,
    FlagLabNotNotified,
)

# The catalogue: the wire name of each command another service sends, beside its type. A wire name is a
# Temporal update name: running episodes and recorded histories know it, so it never changes.

# Commands whose decision may move the client (a result's step-up, a review's step down, a relapse's re-entry),
# carrying the levels their facility cannot take the client at now (overrides, assessments and transfers
# handle theirs in their own decisions).
MOVING_COMMANDS = (RecordTestResult, RecordReviewOutcome, RecordFollowUpOutcome)

COMMANDS: dict[str, type[Command]] = {
    "open": OpenEpisode,
    "record_assessment": RecordAssessment,
    "override_placement": OverridePlacement,
    "record_review_outcome": RecordReviewOutcome,
    "put_on_hold": PutOnHold,
    "resume": Resume,
    "discharge": Discharge,
    "order_test": OrderTest,
    "record_specimen_collection": RecordSpecimenCollection,
    "record_test_result": RecordTestResult,
    "cancel_test": CancelTest,
    "change_medications": ChangeMedications,
    "decide_step_up": DecideStepUp,
    "reverse_step_up": ReverseStepUp,
    "record_consent": RecordConsent,
    "revoke_consent": RevokeConsent,
    "update_referral": UpdateReferral,
    "record_follow_up_outcome": RecordFollowUpOutcome,
    "schedule_session": ScheduleSession,
    "record_attendance": RecordAttendance,
    "record_missed_session": RecordMissedSession,
    "cancel_session": CancelSession,
    "record_re_engagement_review": RecordReEngagementReview,
    "record_treatment_plan": RecordTreatmentPlan,
    "record_plan_review": RecordPlanReview,
    "transfer": TransferEpisode,
    "request_authorization": RequestAuthorization,
    "record_authorization_decision": RecordAuthorizationDecision,
    "record_concurrent_review": RecordConcurrentReview,
}
COMMAND_NAMES: dict[type[Command], str] = {cls: name for name, cls in COMMANDS.items()}


def command_name(command: Command) -> str | None:
    """The wire name another service sends `command` by; None for a command only the episode's clock issues."""
    return COMMAND_NAMES.get(type(command))
