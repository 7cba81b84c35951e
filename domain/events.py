"""Domain events: immutable, past tense, each with a schema version. Registered by type name.

Decision events carry `policy_version`: the hash of the policy they were made under.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from domain.episode import DischargeReason, HoldReason, OverrideReason, ReviewOutcome, TedsDischarge
from domain.ids import ClientId, EpisodeId
from domain.levels import Direction, LevelOfCare


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


@dataclass(frozen=True)
class PlacementOverridden(DomainEvent):
    """A clinician placed the client elsewhere than recommended; both levels stay on record."""

    recommended_level: LevelOfCare
    actual_level: LevelOfCare
    reason: OverrideReason
    note: str
    clinician: str


@dataclass(frozen=True)
class StayStarted(DomainEvent):
    """The first stay of the episode began at `level`; a review is due at `review_after_days` of it."""

    level: LevelOfCare
    review_after_days: float
    policy_version: str


@dataclass(frozen=True)
class LevelChanged(DomainEvent):
    """The client moved along the continuum; `cause` says what moved them (a review, an override, ...)."""

    from_level: LevelOfCare
    to_level: LevelOfCare
    direction: Direction
    cause: str
    review_after_days: float
    policy_version: str


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


@dataclass(frozen=True)
class ReviewEscalated(DomainEvent):
    """The review was not done by its due date: the clinical director is alerted. It is never skipped."""

    review_id: str
    due_at: datetime
    policy_version: str


@dataclass(frozen=True)
class FlagRaised(DomainEvent):
    """Something the clinical director should see (an overdue review, a missing result, ...)."""

    flag: str
    reason: str


@dataclass(frozen=True)
class FlagCleared(DomainEvent):
    flag: str


@dataclass(frozen=True)
class EpisodePutOnHold(DomainEvent):
    """Clocks stop while the client is hospitalised, incarcerated or on leave."""

    reason: HoldReason


@dataclass(frozen=True)
class EpisodeResumed(DomainEvent):
    held_seconds: float


@dataclass(frozen=True)
class EpisodeClosed(DomainEvent):
    reason: DischargeReason
    teds: TedsDischarge
    policy_version: str
    note: str = ""


EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.type_name(): cls
    for cls in (
        EpisodeOpened,
        AssessmentRecorded,
        PlacementDecided,
        PlacementOverridden,
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
    )
}
