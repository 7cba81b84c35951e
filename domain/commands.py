"""Commands: what a service or the episode's own clock asks of an episode. Imperative names."""

from __future__ import annotations

from dataclasses import dataclass

from domain.episode import DischargeReason, HoldReason, OverrideReason, ReviewOutcome
from domain.levels import LevelOfCare


@dataclass(frozen=True)
class RecordAssessment:
    ratings: tuple[int, ...]  # the six ASAM dimensions, 0-4, in order
    assessed_by: str


@dataclass(frozen=True)
class OpenEpisode:
    episode_id: str
    client_id: str
    previous_episode_id: str | None = None
    assessment: RecordAssessment | None = None


@dataclass(frozen=True)
class OverridePlacement:
    level: LevelOfCare
    reason: OverrideReason
    note: str
    clinician: str


@dataclass(frozen=True)
class RecordReviewOutcome:
    review_id: str
    outcome: ReviewOutcome
    therapist: str
    next_review_in_days: float | None = None  # with `extend`; the policy's default otherwise


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


Command = (
    OpenEpisode | RecordAssessment | OverridePlacement | RecordReviewOutcome | PutOnHold | Resume | Discharge
    | RequestReview | EscalateReview | CompleteAftercare
)  # fmt: skip
