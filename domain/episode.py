"""An episode of care: statuses, reasons (discharge with TEDS codes, hold, override), and its folded state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from continuum.domain.aftercare import Consent, FollowUp, Referral
from continuum.domain.authorizations import Authorization
from continuum.domain.flags import Flag
from continuum.domain.ids import ClientId, EpisodeId
from continuum.domain.levels import LevelOfCare
from continuum.domain.plans import TreatmentPlan
from continuum.domain.services import Session
from continuum.domain.testing import DrugTest


class EpisodeStatus(StrEnum):
    INTAKE = "intake"
    ACTIVE = "active"
    ON_HOLD = "on_hold"
    CLOSED = "closed"


class TedsDischarge(StrEnum):
    """Reason-for-discharge categories of the federal Treatment Episode Data Set."""

    COMPLETED = "completed"
    TRANSFERRED = "transferred"
    DROPPED_OUT = "dropped_out"
    TERMINATED = "terminated"
    OTHER = "other"


class DischargeReason(StrEnum):
    COMPLETED = "completed"
    AGAINST_MEDICAL_ADVICE = "against_medical_advice"
    ADMINISTRATIVE = "administrative"
    TRANSFERRED = "transferred"
    DECEASED = "deceased"
    LOST_TO_FOLLOW_UP = "lost_to_follow_up"

    @property
    def teds(self) -> TedsDischarge:
        return _TEDS[self]


_TEDS = {
    DischargeReason.COMPLETED: TedsDischarge.COMPLETED,
    DischargeReason.AGAINST_MEDICAL_ADVICE: TedsDischarge.DROPPED_OUT,
    DischargeReason.ADMINISTRATIVE: TedsDischarge.TERMINATED,
    DischargeReason.TRANSFERRED: TedsDischarge.TRANSFERRED,
    DischargeReason.DECEASED: TedsDischarge.OTHER,
    DischargeReason.LOST_TO_FOLLOW_UP: TedsDischarge.DROPPED_OUT,
}


class HoldReason(StrEnum):
    HOSPITALISED = "hospitalised"
    INCARCERATED = "incarcerated"
    LEAVE = "leave"


class OverrideReason(StrEnum):
    SERVICE_UNAVAILABLE = "service_unavailable"
    CLIENT_PREFERENCE = "client_preference"
    COURT_ORDER = "court_order"
    CLINICAL_JUDGMENT = "clinical_judgment"
    PAYER_DENIAL = "payer_denial"


class ReviewOutcome(StrEnum):
    GOALS_MET = "goals_met"  # step down to the next level the policy names
    EXTEND = "extend"  # stay, and review again later
    STEP_UP = "step_up"  # clinical deterioration


class Numbered(StrEnum):
    """The records an episode numbers in order: their ids read `<episode id>.<letter><n>` (`ep-1.T3`)."""

    TEST = "T"
    REFERRAL = "R"
    FOLLOW_UP = "F"
    AUTHORIZATION = "A"

    def id(self, episode_id: str, number: int) -> str:
        """The id of this episode's `number`th record of this kind: the one way such ids are minted."""
        return f"{episode_id}.{self.value}{number}"


class StepUpWait(StrEnum):
    """What a pending step-up waits for."""

    CONFIRMATION = "confirmation"  # the lab's confirmation of a presumptive positive
    REVIEW = "review"  # a clinician's step-up review (the policy's `positive_result_action = "review"`)


class StepUpCancellation(StrEnum):
    """Why a pending step-up will not happen (recorded as these words)."""

    RESULT_CORRECTED = "the result was corrected to one that does not count"
    CONFIRMATION_NEGATIVE = "the laboratory confirmation was negative"


@dataclass(frozen=True)
class Waitlisted:
    """On the facility's waitlist for `wanted_level` since `since`, placed at `interim_level` meanwhile."""

    wanted_level: LevelOfCare
    interim_level: LevelOfCare
    since: datetime


@dataclass(frozen=True)
class PendingReview:
    """A therapist's completion review that was requested and not yet recorded."""

    review_id: str
    level: LevelOfCare
    requested_at: datetime
    due_at: datetime
    escalated: bool = False


@dataclass(frozen=True)
class PendingStepUp:
    """A counting positive's step-up that waits for the lab's confirmation or a clinician's review."""

    test_id: str
    waiting_for: StepUpWait
    target_level: LevelOfCare
    due_at: datetime | None


@dataclass(frozen=True)
class StepUpRecord:
    """The last step-up caused by a test, so a clinician can reverse it."""

    test_id: str
    from_level: LevelOfCare
    to_level: LevelOfCare


@dataclass(frozen=True)
class LevelSpell:
    """The client was at `level` from `since` (until the next spell): what a care week's minimum reads."""

    level: LevelOfCare
    since: datetime


@dataclass(frozen=True)
class HoldSpell:
    start: datetime
    end: datetime | None = None  # None while the hold goes on


@dataclass(frozen=True)
class Episode:
    """The state of one episode, derived only by folding its events in order (see `domain.fold`)."""

    episode_id: EpisodeId
    client_id: ClientId
    status: EpisodeStatus
    opened_at: datetime
    status_since: datetime
    version: int = 0
    previous_episode_id: EpisodeId | None = None
    ratings: tuple[int, ...] | None = None
    recommended_level: LevelOfCare | None = None
    after_withdrawal_level: LevelOfCare | None = None
    placement_rules: tuple[str, ...] = ()
    override_reason: OverrideReason | None = None
    # The placement: when the first stay began, and how many moves and placement overrides came since (while
    # every move was an override, the placement may still be overridden; see `domain.decisions`).
    placed_at: datetime | None = None
    moves: int = 0
    placement_overrides: int = 0
    level: LevelOfCare | None = None
    level_since: datetime | None = None
    # The stay clock: days count from level_since, less the time spent on hold during the stay.
    stay_held_seconds: float = 0.0
    review_after_days: float | None = None  # stay-clock days at which the next review is requested
    pending_review: PendingReview | None = None
    reviews_completed: int = 0
    hold_reason: HoldReason | None = None
    flags: tuple[Flag, ...] = field(default=())
    discharge_reason: DischargeReason | None = None
    closed_at: datetime | None = None
    # Drug testing
    medications: tuple[str, ...] = ()
    sobriety_since: datetime | None = None
    tests: tuple[DrugTest, ...] = ()
    tests_ordered: int = 0
    tests_closed_through: int = 0  # tests numbered up to this left the working state (domain.retention)
    schedule_level: LevelOfCare | None = None
    schedule_window_end: datetime | None = None
    planned_tests: tuple[datetime, ...] = ()  # drawn instants not yet ordered
    pending_step_up: PendingStepUp | None = None
    last_step_up: StepUpRecord | None = None
    # Aftercare
    consents: tuple[Consent, ...] = ()
    referrals: tuple[Referral, ...] = ()
    follow_ups: tuple[FollowUp, ...] = ()
    follow_ups_planned: int = 0  # follow-up ids are numbered by this (a dropped plan keeps its number)
    not_reached_in_a_row: int = 0
    # Treatment services (domain.attendance): sessions, and what the weekly dose reads
    sessions: tuple[Session, ...] = ()
    level_spells: tuple[LevelSpell, ...] = ()
    hold_spells: tuple[HoldSpell, ...] = ()
    attendance_since: datetime | None = None  # the first session's scheduling: care weeks are tallied from its week
    weeks_closed: int = 0  # the last care week tallied (CareWeekClosed), 0 before the first
    unexcused_misses_in_a_row: int = 0
    last_attended_at: datetime | None = None
    re_engagement_due_at: datetime | None = None  # a re-engagement review is open, due then
    re_engagement_escalated: bool = False
    sessions_closed_before: datetime | None = None  # sessions that began before left the working state
    # Treatment plans (domain.plan_decisions): the plan, and when the initial plan or its next review is due
    plan: TreatmentPlan | None = None
    plan_due_at: datetime | None = None
    plan_escalated: bool = False  # the due date passed: escalated, until a plan or review is recorded
    # Facilities (domain.facilities): where the episode is (None: opened before facilities, the default one), and
    # the level it waits for there, if the facility could not take the client at the level decided.
    facility_id: str | None = None
    waitlist: Waitlisted | None = None
    # Utilization review (domain.authorization_decisions): the payer authorizations requested, in order
    authorizations: tuple[Authorization, ...] = ()

    def referral(self, referral_id: str) -> Referral | None:
        return next((r for r in self.referrals if r.referral_id == referral_id), None)

    def consent(self, consent_id: str) -> Consent | None:
        return next((c for c in self.consents if c.consent_id == consent_id), None)

    def follow_up(self, follow_up_id: str) -> FollowUp | None:
        return next((f for f in self.follow_ups if f.follow_up_id == follow_up_id), None)

    def session(self, session_id: str) -> Session | None:
        return next((s for s in self.sessions if s.session_id == session_id), None)

    def authorization(self, authorization_id: str) -> Authorization | None:
        return next((a for a in self.authorizations if a.authorization_id == authorization_id), None)

    def test(self, test_id: str) -> DrugTest | None:
        return next((t for t in self.tests if t.test_id == test_id), None)
