"""What happened beside what the simulated policy would have done: placements, step-ups, days at each level
and tests ordered, per episode and over the cohort, with what the past could not tell counted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from continuum.domain.events import DomainEvent, EpisodeClosed, LevelChanged, PlacementDecided, TestOrdered
from continuum.domain.levels import Direction, LevelOfCare
from continuum.domain.simulation import SimulatedEpisode
from continuum.domain.stays import stays


@dataclass(frozen=True)
class StepUp:
    """A move up the continuum: when, from and to (how a step-up is the same one in both courses)."""

    at: datetime
    from_level: LevelOfCare
    to_level: LevelOfCare
    cause: str


@dataclass(frozen=True)
class Course:
    """What one episode's events amount to."""

    placement: LevelOfCare | None  # the recommended level of the (first) placement
    step_ups: tuple[StepUp, ...]
    days_at_level: dict[str, float]  # care days per level (to the episode's close, or the end of the record)
    tests_ordered: int
    discharge: str | None  # the reason the episode closed, if it did


def course_of(events: Sequence[DomainEvent], end: datetime | None, day: timedelta) -> Course:
    placement = next((e.recommended_level for e in events if isinstance(e, PlacementDecided)), None)
    ups = tuple(
        StepUp(e.occurred_at, e.from_level, e.to_level, e.cause)
        for e in events
        if isinstance(e, LevelChanged) and e.direction is Direction.UP
    )
    days: dict[str, float] = {}
    for stay in stays(events):
        until = stay.end or end or stay.start
        days[stay.level.value] = days.get(stay.level.value, 0.0) + max(timedelta(0), until - stay.start) / day
    closed = next((e.reason.value for e in events if isinstance(e, EpisodeClosed)), None)
    ordered = sum(1 for e in events if isinstance(e, TestOrdered))
    return Course(placement, ups, days, ordered, closed)


@dataclass(frozen=True)
class EpisodeComparison:
    """One episode, as recorded and as simulated."""

    episode_id: str
    recorded: Course
    simulated: Course
    unchanged: bool  # the simulation recorded exactly the recorded events
    step_ups_added: tuple[StepUp, ...]
    step_ups_removed: tuple[StepUp, ...]
    results_dropped: int
    tests_without_result: int
    inputs_refused: dict[str, int]
    draws_new: int

    @property
    def placement_changed(self) -> bool:
        return self.recorded.placement is not self.simulated.placement


def compare(recorded: Sequence[DomainEvent], simulated: SimulatedEpisode, day: timedelta) -> EpisodeComparison:
    before = course_of(recorded, simulated.end, day)
    after = course_of(simulated.events, simulated.end, day)
    key = _step_up_key
    kept = Counter(map(key, before.step_ups)) & Counter(map(key, after.step_ups))
    return EpisodeComparison(
        simulated.episode_id,
        before,
        after,
        tuple(recorded) == simulated.events,
        _beyond(after.step_ups, kept),
        _beyond(before.step_ups, kept),
        simulated.results_dropped,
        simulated.tests_without_result,
        simulated.refused_by_kind(),
        simulated.draws_new,
    )


def _step_up_key(step_up: StepUp) -> tuple[datetime, LevelOfCare, LevelOfCare]:
    return step_up.at, step_up.from_level, step_up.to_level


def _beyond(step_ups: Iterable[StepUp], kept: Counter[tuple[datetime, LevelOfCare, LevelOfCare]]) -> tuple[StepUp, ...]:
    """The step-ups not among `kept` (a multiset: the same step twice counts twice)."""
    left = Counter(kept)
    beyond = []
    for step_up in step_ups:
        if left[_step_up_key(step_up)] > 0:
            left[_step_up_key(step_up)] -= 1
        else:
            beyond.append(step_up)
    return tuple(beyond)


@dataclass(frozen=True)
class SideBySide:
    recorded: float
    simulated: float


@dataclass
class CohortComparison:
    """The cohort's totals, as recorded and as simulated."""

    episodes: int = 0
    episodes_unchanged: int = 0
    placements_changed: int = 0
    placement_changes: dict[str, int] = field(default_factory=dict)  # "residential -> intensive_outpatient": n
    step_ups: SideBySide = SideBySide(0, 0)
    step_ups_added: int = 0
    step_ups_removed: int = 0
    days_at_level: dict[str, SideBySide] = field(default_factory=dict)
    tests_ordered: SideBySide = SideBySide(0, 0)
    discharges: dict[str, SideBySide] = field(default_factory=dict)
    results_dropped: int = 0
    tests_without_result: int = 0
    inputs_refused: dict[str, int] = field(default_factory=dict)
    draws_new: int = 0


def summarise(comparisons: Iterable[EpisodeComparison]) -> CohortComparison:
    total = CohortComparison()
    changes: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    days: dict[str, list[float]] = {}
    discharges: dict[str, list[float]] = {}
    ups = [0.0, 0.0]
    tests = [0.0, 0.0]
    for c in comparisons:
        total.episodes += 1
        total.episodes_unchanged += c.unchanged
        if c.placement_changed:
            total.placements_changed += 1
            changes[f"{_name(c.recorded.placement)} -> {_name(c.simulated.placement)}"] += 1
        ups[0] += len(c.recorded.step_ups)
        ups[1] += len(c.simulated.step_ups)
        total.step_ups_added += len(c.step_ups_added)
        total.step_ups_removed += len(c.step_ups_removed)
        for side, course in enumerate((c.recorded, c.simulated)):
            for level, n in course.days_at_level.items():
                days.setdefault(level, [0.0, 0.0])[side] += n
            if course.discharge is not None:
                discharges.setdefault(course.discharge, [0.0, 0.0])[side] += 1
            tests[side] += course.tests_ordered
        total.results_dropped += c.results_dropped
        total.tests_without_result += c.tests_without_result
        refused.update(c.inputs_refused)
        total.draws_new += c.draws_new
    total.placement_changes = dict(sorted(changes.items()))
    total.inputs_refused = dict(sorted(refused.items()))
    total.step_ups = SideBySide(*ups)
    total.tests_ordered = SideBySide(*tests)
    order = {level.value: level.intensity for level in LevelOfCare}
    total.days_at_level = {
        k: SideBySide(round(v[0], 3), round(v[1], 3)) for k, v in sorted(days.items(), key=lambda kv: -order[kv[0]])
    }
    total.discharges = {k: SideBySide(*v) for k, v in sorted(discharges.items())}
    return total


def _name(level: LevelOfCare | None) -> str:
    return level.value if level is not None else "none"
