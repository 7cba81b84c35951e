"""Request and response bodies at the HTTP edge: strict (unknown fields are refused) and bounded.

Every value a body accepts can be recorded: instants are time-zone aware and plausible, text carries no
control characters, and every string and list has a bound (the rules are `domain.values`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from continuum.access import Role
from continuum.domain.aftercare import FollowUpOutcome, ReferralStatus
from continuum.domain.aftercare_decisions import MAX_CONSENT_DAYS
from continuum.domain.authorizations import (
    MAX_AUTHORIZATION_NUMBER,
    MAX_AUTHORIZED_DAYS_AHEAD,
    MAX_UNITS,
    AuthorizationDecision,
    AuthorizationUnit,
    ConcurrentReviewOutcome,
    DenialReason,
)
from continuum.domain.commands import MAX_CANCELLATION_REASON, MAX_NOTE
from continuum.domain.episode import DischargeReason, HoldReason, OverrideReason, ReviewOutcome
from continuum.domain.errors import InvalidIdentifier
from continuum.domain.flags import SEPARATOR as FLAG_SEPARATOR
from continuum.domain.flags import FlagFamily
from continuum.domain.ids import ID_PATTERN, pseudonymous_client_id
from continuum.domain.levels import LevelOfCare
from continuum.domain.plans import MAX_PLAN_ITEMS, MAX_PLAN_TEXT
from continuum.domain.services import LONGEST_SESSION_MINUTES, CancelReason, MissReason, Modality
from continuum.domain.testing import NO_SPECIMEN, TestMethod, TestResult
from continuum.domain.testing_decisions import NAMES_WHAT_IT_FOUND
from continuum.domain.values import CLOCK_SKEW, instant_problem, text_problem


def _plausible(value: datetime, ahead: timedelta) -> datetime:
    problem = instant_problem(value, datetime.now(UTC), ahead)
    if problem is not None:
        raise PydanticCustomError("implausible_instant", problem)
    return value


def plausible_instant(value: datetime) -> datetime:
    """A 422 for an instant outside the plausible window (1900-01-01 to a day from now)."""
    return _plausible(value, CLOCK_SKEW)


def _consent_expiry(value: datetime) -> datetime:
    return _plausible(value, timedelta(days=MAX_CONSENT_DAYS) + CLOCK_SKEW)


def _text(value: str) -> str:
    if (problem := text_problem(value)) is not None:
        raise PydanticCustomError("unsafe_text", problem)
    return value


def _pseudonym(value: object) -> object:
    # The domain's rule, before the id pattern, so that an e-mail address or phone number is named for what it is.
    if isinstance(value, str):
        try:
            pseudonymous_client_id(value)
        except InvalidIdentifier as error:
            raise PydanticCustomError("identifying_id", str(error)) from None
    return value


def _line(value: str) -> str:
    if (problem := text_problem(value, multiline=False)) is not None:
        raise PydanticCustomError("unsafe_text", problem)
    if not value.strip():
        raise PydanticCustomError("blank_text", "must not be blank")
    return value


Id = Annotated[str, Field(pattern=f"^{ID_PATTERN}$", examples=["EP-1001"])]
ClientId = Annotated[
    Id,
    BeforeValidator(_pseudonym),
    Field(
        description="a pseudonymous client id; never a name, record number, SSN, e-mail address or phone number",
        examples=["client-1001"],
    ),
]
Instant = Annotated[
    AwareDatetime, AfterValidator(plausible_instant), Field(description="with a time zone; 1900 to a day from now")
]
Note = Annotated[str, Field(max_length=MAX_NOTE), AfterValidator(_text)]
Reason = Annotated[str, Field(min_length=1, max_length=MAX_NOTE), AfterValidator(_text)]
CancellationReason = Annotated[str, Field(min_length=1, max_length=MAX_CANCELLATION_REASON), AfterValidator(_text)]
LabReference = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_line)]
Substance = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ,.'()/-]*$")]
Rating = Annotated[int, Field(ge=0, le=4)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssessmentBody(Body):
    ratings: Annotated[list[Rating], Field(min_length=6, max_length=6, description="ASAM dimensions 1-6, each 0-4")]
    assessed_by: Id


class OpenEpisodeBody(Body):
    episode_id: Id
    client_id: ClientId
    previous_episode_id: Id | None = None
    assessment: AssessmentBody | None = None
    facility_id: Id | None = Field(None, description="the facility it opens at (default: the default facility)")


class TransferBody(Body):
    facility_id: Id = Field(description="the facility the episode moves to")
    reason: Reason
    clinician: Id


class OverrideBody(Body):
    level: LevelOfCare
    reason: OverrideReason
    note: Note = ""
    clinician: Id
    director: Id | None = None  # the clinical director whose decision a step down after the placement is


class DischargeBody(Body):
    reason: DischargeReason
    note: Note = ""


class HoldBody(Body):
    reason: HoldReason


class ReviewOutcomeBody(Body):
    outcome: ReviewOutcome
    therapist: Id
    next_review_in_days: Annotated[float, Field(gt=0, le=365)] | None = None
    goals_met: Annotated[
        list[Id], Field(max_length=MAX_PLAN_ITEMS, description="with goals_met: the plan's goal ids found met")
    ] = []


class OrderTestBody(Body):
    ordered_by: Id


class CollectionBody(Body):
    collected_at: Instant
    observed: bool
    temperature_in_range: bool
    site: Id


class TestResultBody(Body):
    """`method` and `collected_at` are required, except for `refused` and `no_show` (no specimen)."""

    result: TestResult
    method: Annotated[TestMethod | None, Field(validate_default=True)] = None
    collected_at: Annotated[Instant | None, Field(validate_default=True)] = None
    lab_reference: LabReference
    substances: Annotated[list[Substance], Field(max_length=20, validate_default=True)] = []
    corrects_lab_reference: LabReference | None = None

    @field_validator("method", "collected_at")
    @classmethod
    def _specimen(cls, value: object, info: ValidationInfo) -> object:
        result = info.data.get("result")
        if value is None and result is not None and result not in NO_SPECIMEN:
            raise ValueError(f"a {result.value} result names it (only refused and no_show have no specimen)")
        return value

    @field_validator("substances")
    @classmethod
    def _names_what_it_found(cls, substances: list[str], info: ValidationInfo) -> list[str]:
        result = info.data.get("result")
        if result in NAMES_WHAT_IT_FOUND and not any(s.strip() for s in substances):
            raise ValueError(f"a {result.value} result names at least one substance or adulterant it found")
        return substances


class CancelTestBody(Body):
    cancelled_by: Id
    reason: CancellationReason


class MedicationsBody(Body):
    medications: Annotated[list[Substance], Field(max_length=50)]
    changed_by: Id


class StepUpDecisionBody(Body):
    confirm: bool
    clinician: Id
    note: Note = ""


class StepUpReversalBody(Body):
    clinician: Id
    reason: Reason


class ConsentBody(Body):
    consent_id: Id
    recipient: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="the partner id disclosed to")]
    purpose: Annotated[str, Field(pattern=r"^[a-z_]{1,40}$", examples=["aftercare_referral"])]
    expires_at: Annotated[AwareDatetime, AfterValidator(_consent_expiry), Field(description="within 5 years")]
    recorded_by: Id


class RevocationBody(Body):
    revoked_by: Id


class ReferralStatusBody(Body):
    status: Annotated[ReferralStatus, Field(description="accepted, declined or completed")]
    changed_by: Id | None = Field(None, description="who answers; a partner key answers as its partner")


class FollowUpOutcomeBody(Body):
    outcome: FollowUpOutcome
    recorded_by: Id


class CreateKeyBody(Body):
    name: Id
    role: Role
    subject: Id | None = Field(None, description="the lab or partner id a lab or partner key speaks for")
    facilities: list[Id] | None = Field(
        None, max_length=100, description="the facilities the key is scoped to (none: the whole operator)"
    )


def _session_start(value: datetime) -> datetime:
    return _plausible(value, timedelta(days=MAX_SCHEDULE_AHEAD_DAYS) + CLOCK_SKEW)


MAX_SCHEDULE_AHEAD_DAYS = 366  # a session is scheduled at most a year ahead
SessionKind = Annotated[str, Field(pattern=r"^[a-z][a-z_]{0,39}$", examples=["group"])]


class SessionBody(Body):
    session_id: Id
    kind: Annotated[SessionKind, Field(description="one of the policy's services.kinds")]
    starts_at: Annotated[AwareDatetime, AfterValidator(_session_start), Field(description="within a year ahead")]
    minutes: Annotated[int, Field(ge=1, le=LONGEST_SESSION_MINUTES, description="the session's scheduled length")]
    scheduled_by: Id


class AttendanceBody(Body):
    minutes: Annotated[int, Field(ge=1, le=LONGEST_SESSION_MINUTES, description="at most the session's length")]
    modality: Modality
    recorded_by: Id


class MissedSessionBody(Body):
    excused: bool
    reason: MissReason
    recorded_by: Id


class SessionCancellationBody(Body):
    reason: CancelReason
    cancelled_by: Id


class ReEngagementReviewBody(Body):
    clinician: Id
    note: Note = ""


Dimension = Annotated[int, Field(ge=1, le=6, description="the ASAM dimension (1-6)")]
PlanText = Annotated[str, Field(min_length=1, max_length=MAX_PLAN_TEXT), AfterValidator(_text)]


class PlanProblemBody(Body):
    dimension: Dimension
    description: PlanText


class PlanGoalBody(Body):
    goal_id: Annotated[Id, Field(description="unique in the plan; a completion review names it as met")]
    dimension: Dimension
    description: PlanText


class TreatmentPlanBody(Body):
    problems: Annotated[list[PlanProblemBody], Field(min_length=1, max_length=MAX_PLAN_ITEMS)]
    goals: Annotated[list[PlanGoalBody], Field(min_length=1, max_length=MAX_PLAN_ITEMS)]
    signed_by: Annotated[Id, Field(description="the clinician who signed the plan (pseudonymous id)")]
    client_signed: bool


class PlanReviewBody(TreatmentPlanBody):
    """A plan review: the plan as revised (problems and goals), and who signed it."""

    review_id: Id


def _authorized_instant(value: datetime) -> datetime:
    return _plausible(value, timedelta(days=MAX_AUTHORIZED_DAYS_AHEAD) + CLOCK_SKEW)


AuthorizedInstant = Annotated[
    AwareDatetime, AfterValidator(_authorized_instant), Field(description="with a time zone; 1900 to two years ahead")
]
Units = Annotated[int, Field(ge=1, le=MAX_UNITS, description="days or units: a whole number above zero")]


class AuthorizationRequestBody(Body):
    """A request to a payer for a level of care (the episode mints its id: the answer's Location names it)."""

    payer: Annotated[Id, Field(description="the payer's id", examples=["payer-bcbs"])]
    level: LevelOfCare
    unit: AuthorizationUnit = AuthorizationUnit.DAYS
    requested_units: Units
    requested_by: Id


class AuthorizationDecisionBody(Body):
    """The payer's answer: approved or partially_approved (number, start, end, units), denied (denial_reason), or
    extended (the new end, and the days or units added as `units`)."""

    decision: AuthorizationDecision
    decided_by: Id
    payer: Id | None = None
    authorization_number: (
        Annotated[str, Field(min_length=1, max_length=MAX_AUTHORIZATION_NUMBER), AfterValidator(_line)] | None
    ) = None
    start: AuthorizedInstant | None = None
    end: AuthorizedInstant | None = None
    units: Units | None = None
    denial_reason: DenialReason | None = None


class ConcurrentReviewBody(Body):
    outcome: ConcurrentReviewOutcome
    reviewed_by: Id
    note: Note = ""


# -- shared field types of the answers ------------------------------------------------------------------------

FlagText = Annotated[
    str,
    Field(
        pattern=f"^({'|'.join(f.value for f in FlagFamily)})({FLAG_SEPARATOR}.+)?$",
        description="a flag: its family, and for some a subject after `:` (`result_missing:T-3`)",
        examples=["result_missing:EP-1001-T3"],
    ),
]
