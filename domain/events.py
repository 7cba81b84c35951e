"""Domain events: immutable, past tense, each with a schema version. Registered by type name."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from domain.episode import DischargeReason, HoldReason
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
class StayStarted(DomainEvent):
    """The first stay of the episode began at `level`."""

    level: LevelOfCare


@dataclass(frozen=True)
class LevelChanged(DomainEvent):
    """The client moved along the continuum; `cause` says what moved them."""

    from_level: LevelOfCare
    to_level: LevelOfCare
    direction: Direction
    cause: str


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
    pass


@dataclass(frozen=True)
class EpisodeClosed(DomainEvent):
    reason: DischargeReason


EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.type_name(): cls
    for cls in (
        EpisodeOpened,
        StayStarted,
        LevelChanged,
        FlagRaised,
        FlagCleared,
        EpisodePutOnHold,
        EpisodeResumed,
        EpisodeClosed,
    )
}
