"""The episode page's readings of the record: the episode's care day, its placements with the rules and ratings
that decided them, and the timeline's care-day axis. The page and its print view share them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from continuum.api.triage import care_day_ticks
from continuum.domain.assessment import Dimension
from continuum.domain.codec import EventEnvelope, from_envelope, parse_instant
from continuum.domain.events import (
    DomainEvent,
    PlacementDecided,
    PlacementOverridden,
    TestResultCorrected,
    TestResultRecorded,
    TestScheduleDrawn,
)
from continuum.domain.levels import LevelOfCare
from continuum.eventlog.records import StoredEvent

_READ = frozenset(
    {"PlacementDecided", "PlacementOverridden", "TestScheduleDrawn", "TestResultRecorded", "TestResultCorrected"}
)


def _typed(events: list[StoredEvent]) -> list[tuple[StoredEvent, DomainEvent]]:
    return [
        (e, from_envelope(EventEnvelope(e.event_type, e.schema_version, e.payload)))
        for e in events
        if e.event_type in _READ
    ]


def care_day_of(events: list[StoredEvent], default: timedelta) -> timedelta:
    """The length of the episode's care day: as its test schedule counts it (a demo compresses it), else the
    running engine's."""
    for _, event in _typed(events):
        if isinstance(event, TestScheduleDrawn):
            return timedelta(seconds=event.day_seconds)
    return default


@dataclass(frozen=True)
class Rating:
    dimension: int
    name: str
    rating: int


@dataclass(frozen=True)
class PlacementRow:
    """A placement as the page shows it: the recommended level, the rules that fired, the deciding rule in
    words and the six ratings it read; or a clinician's override of it, with the coded reason."""

    at: datetime
    version: int
    recommended_level: LevelOfCare
    rules_fired: tuple[str, ...] = ()
    decided_by: str = ""
    ratings: tuple[Rating, ...] = ()
    after_withdrawal_level: LevelOfCare | None = None
    actual_level: LevelOfCare | None = None  # an override's level
    reason: str = ""
    by: str = ""


def _ratings(ratings: tuple[int, ...]) -> tuple[Rating, ...]:
    return tuple(Rating(d.value, d.name.lower().replace("_", " "), r) for d, r in zip(Dimension, ratings, strict=False))


def placements(events: list[StoredEvent]) -> list[PlacementRow]:
    """Every placement and override on record, in order."""
    rows = []
    for stored, event in _typed(events):
        if isinstance(event, PlacementDecided):
            rows.append(
                PlacementRow(
                    stored.occurred_at,
                    stored.stream_version,
                    event.recommended_level,
                    event.rules_fired,
                    event.decided_by,
                    _ratings(event.ratings),
                    event.after_withdrawal_level,
                )
            )
        elif isinstance(event, PlacementOverridden):
            rows.append(
                PlacementRow(
                    stored.occurred_at,
                    stored.stream_version,
                    event.recommended_level,
                    actual_level=event.actual_level,
                    reason=event.reason.value.replace("_", " ") + (f": {event.note}" if event.note else ""),
                    by=event.clinician,
                )
            )
    return rows


@dataclass(frozen=True)
class ResultRow:
    """A drug-test result as recorded (a correction is its own row): what was found, and how the policy read it."""

    at: datetime
    test_id: str
    result: str
    substances: tuple[str, ...]
    counts_as_positive: bool
    interpretation: str
    corrected: bool


def results(events: list[StoredEvent]) -> list[ResultRow]:
    """Every result on record, in order, with the substances it names (the working state keeps open tests only)."""
    return [
        ResultRow(
            stored.occurred_at,
            event.test_id,
            event.result.value,
            event.substances,
            event.counts_as_positive,
            event.interpretation,
            isinstance(event, TestResultCorrected),
        )
        for stored, event in _typed(events)
        if isinstance(event, TestResultRecorded)
    ]


@dataclass(frozen=True)
class CareClock:
    """The timeline's frame: from the episode's first event to `until`, counted in the episode's care days."""

    start: datetime
    until: datetime
    day: timedelta

    @property
    def span(self) -> float:
        return max((self.until - self.start).total_seconds(), self.day.total_seconds())

    def x(self, at: datetime, left: float = 170, width: float = 780) -> float:
        """Where an instant falls on a timeline drawn from `left`, `width` wide."""
        return left + width * (at - self.start).total_seconds() / self.span

    def day_of(self, at: datetime | str) -> int:
        """The care day an instant (or its ISO spelling, as the state keeps it) fell on: day 1 is the day the
        episode opened."""
        instant = parse_instant(at) if isinstance(at, str) else at
        return int((instant - self.start) / self.day) + 1

    def ticks(self) -> list[tuple[float, str]]:
        return care_day_ticks(timedelta(seconds=self.span), self.day)
