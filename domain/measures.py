"""Outcome measures from the log: what happened to the clients, counted from their episodes' events alone.

`compute_measures(histories, period, by=...)` is pure: one sequence of events per episode, in log order (the
events `domain.fold` folds), a period, and the dimensions to group by. It reads no clock: what has not yet
been observable (a 90-day window that ends after the last event seen, or after the period) is excluded, so
the same histories always give the same numbers. Each measure's numerator, denominator and exclusions are in
README ("Outcome measures"); `MEASURES` names them in the order they are reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from continuum.domain.aftercare import FollowUpKind, FollowUpOutcome
from continuum.domain.episode import DischargeReason, ReviewOutcome
from continuum.domain.errors import DomainError
from continuum.domain.events import (
    CareWeekClosed,
    DomainEvent,
    EpisodeClosed,
    EpisodeOpened,
    EpisodePutOnHold,
    EpisodeResumed,
    FollowUpRecorded,
    FollowUpsScheduled,
    LevelChanged,
    LevelChangeDecided,
    PlacementOverridden,
    ReviewCompleted,
    SessionAttended,
    StayStarted,
    TestOrdered,
    TestResultCorrected,
    TestResultRecorded,
)
from continuum.domain.facilities import DEFAULT_FACILITY
from continuum.domain.levels import Direction, LevelOfCare
from continuum.domain.stays import Stay, stays

DAY = timedelta(days=1)
RETENTION_DAYS = (30, 60, 90)  # NIDA: at least 90 days in treatment
FOLLOW_UP_DAYS = (7, 30)  # HEDIS-style follow-up after leaving a 24-hour level
AFTERCARE_POINTS = (30, 60, 90)  # the aftercare follow-ups reported, by their day in aftercare
READMISSION_DAYS = (30, 90)
TWENTY_FOUR_HOUR_LEVELS = frozenset({LevelOfCare.RESIDENTIAL, LevelOfCare.WITHDRAWAL_MANAGEMENT})


class MeasuresError(DomainError):
    """A request for measures that cannot be answered as asked (names the parameter)."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter


class Grouping(StrEnum):
    """What the measures can be grouped by (`_Episode.dimensions` gives each value)."""

    LEVEL = "level"  # the level the counted thing happened at (see README for each measure)
    COHORT = "cohort"  # the month of admission, `YYYY-MM`
    FACILITY = "facility"  # the facility the episode opened at (a transfer later does not move its counts)


class Unit(StrEnum):
    PERCENT = "percent"
    PER_100_CLIENT_WEEKS = "per_100_client_weeks"
    DAYS = "days"  # a mean: numerator the days summed, denominator how many


@dataclass(frozen=True)
class MeasureDefinition:
    name: str
    title: str
    unit: Unit

    @property
    def scale(self) -> float:
        return {Unit.PERCENT: 100.0, Unit.PER_100_CLIENT_WEEKS: 100.0, Unit.DAYS: 1.0}[self.unit]


class StepUpCause(StrEnum):
    """Why a client was stepped up, as the decision that moved them records it."""

    POSITIVE_TEST = "positive_test"  # a counting positive (automatic, or confirmed on a step-up review)
    REVIEW = "review"  # a therapist's completion review said `step_up`
    FOLLOW_UP = "follow_up"  # a follow-up reported use (re-entry from aftercare)
    CLINICIAN = "clinician"  # a clinician's level change outside a review or a test


class StayEnd(StrEnum):
    """How a stay ended (its last event)."""

    GOALS_MET = "goals_met"  # stepped down on a completion review, or discharged `completed`
    STEPPED_UP = "stepped_up"
    AGAINST_MEDICAL_ADVICE = "against_medical_advice"
    DROPPED_OUT = "dropped_out"  # discharged lost to follow-up (TEDS counts it, with AMA, as dropped out)
    ADMINISTRATIVE = "administrative"
    OTHER = "other"  # transferred, deceased, a clinician's move, a reversal


def _definitions() -> tuple[MeasureDefinition, ...]:
    pct, per, days = Unit.PERCENT, Unit.PER_100_CLIENT_WEEKS, Unit.DAYS
    found = [MeasureDefinition(f"retention_{n}d", f"Retained in treatment at {n} days", pct) for n in RETENTION_DAYS]
    found += [
        MeasureDefinition("completion", "Stays completed (goals met)", pct),
        MeasureDefinition("against_medical_advice", "Stays ended against medical advice", pct),
        MeasureDefinition("dropped_out", "Stays ended lost to follow-up (dropped out)", pct),
        MeasureDefinition("administrative", "Stays ended by administrative discharge", pct),
        MeasureDefinition("step_ups", "Step-ups per 100 client-weeks", per),
    ]
    found += [MeasureDefinition(f"step_up_cause_{c.value}", f"Step-ups caused by {c.value}", pct) for c in StepUpCause]
    found += [
        MeasureDefinition("days_positive_to_step_up", "Days from a counting positive to its step-up", days),
        MeasureDefinition("positive_rate", "Tests counting as positive", pct),
    ]
    found += [
        MeasureDefinition(f"follow_up_{n}d", f"Followed up within {n} days of leaving a 24-hour level", pct)
        for n in FOLLOW_UP_DAYS
    ]
    found += [
        MeasureDefinition(f"aftercare_{n}d_{o.value}", f"Aftercare day-{n} follow-ups: {o.value}", pct)
        for n in AFTERCARE_POINTS
        for o in FollowUpOutcome
    ]
    found += [MeasureDefinition(f"readmission_{n}d", f"Readmitted within {n} days", pct) for n in READMISSION_DAYS]
    found += [
        MeasureDefinition("lost_to_follow_up", "Episodes closed lost to follow-up", pct),
        MeasureDefinition("length_of_stay", "Average length of stay", days),
        MeasureDefinition("attendance_weeks_met", "Care weeks meeting the level's minimum hours", pct),
        MeasureDefinition("attendance_hours", "Hours attended against the minimum hours", pct),
    ]
    return tuple(found)


MEASURES: tuple[MeasureDefinition, ...] = _definitions()
# The events the measures read (a reader may leave out every other type: the numbers stay the same).
MEASURED_EVENT_TYPES: frozenset[str] = frozenset(
    cls.type_name()
    for cls in (
        EpisodeOpened,
        StayStarted,
        LevelChanged,
        LevelChangeDecided,
        PlacementOverridden,
        ReviewCompleted,
        EpisodePutOnHold,
        EpisodeResumed,
        EpisodeClosed,
        TestOrdered,
        TestResultRecorded,
        TestResultCorrected,
        FollowUpsScheduled,
        FollowUpRecorded,
        SessionAttended,
        CareWeekClosed,
    )
)
MEASURE_NAMES: dict[str, MeasureDefinition] = {m.name: m for m in MEASURES}


@dataclass(frozen=True)
class Period:
    """From `start` to `end`, both included (instants, time-zone aware)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise MeasuresError("from", "the period's instants need a time zone")
        if self.start > self.end:
            raise MeasuresError("to", "the period ends before it begins")

    @classmethod
    def of_dates(cls, first: date, last: date) -> Period:
        """Whole UTC days from `first` to `last`, both included."""
        if first > last:
            raise MeasuresError("to", f"the period ends ({last.isoformat()}) before it begins ({first.isoformat()})")
        end = datetime.combine(last, time.max, UTC)
        return cls(datetime.combine(first, time.min, UTC), end)

    def holds(self, at: datetime) -> bool:
        return self.start <= at <= self.end


GroupKey = tuple[tuple[Grouping, str], ...]
DEFAULT_PERIOD_DAYS = 90


def default_period(first: date | None, last: date | None, today: date) -> Period:
    """The period asked; without a last day, to `today`; without a first day, `DEFAULT_PERIOD_DAYS` days long."""
    last = last or today
    if first is None:
        if last.toordinal() < DEFAULT_PERIOD_DAYS:
            raise MeasuresError(
                "from", f"give the first day: {DEFAULT_PERIOD_DAYS} days before {last} are before year 1"
            )
        first = last - timedelta(days=DEFAULT_PERIOD_DAYS - 1)
    return Period.of_dates(first, last)


def parse_groupings(text: str) -> tuple[Grouping, ...]:
    """`level,cohort` as groupings (each once, in order), or MeasuresError naming `by`."""
    found = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            found.append(Grouping(part))
        except ValueError:
            names = ", ".join(g.value for g in Grouping)
            raise MeasuresError("by", f"{part!r} is not a grouping (one or more of: {names})") from None
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True)
class MeasureValue:
    """One measure in one group: `value` is numerator / denominator on the measure's scale (None: nothing counted)."""

    name: str
    numerator: float
    denominator: float

    @property
    def definition(self) -> MeasureDefinition:
        return MEASURE_NAMES[self.name]

    @property
    def value(self) -> float | None:
        if not self.denominator:
            return None
        return round(self.definition.scale * self.numerator / self.denominator, 4)


@dataclass(frozen=True)
class MeasureGroup:
    key: GroupKey  # () for every episode together
    values: tuple[MeasureValue, ...]

    def get(self, name: str) -> MeasureValue:
        return next(v for v in self.values if v.name == name)

    @property
    def label(self) -> str:
        return ", ".join(f"{g.value}={v}" for g, v in self.key) or "all"


@dataclass(frozen=True)
class Measures:
    """The measures over a period, the whole first (`groups[0]`, key ()) and then each group, sorted."""

    period: Period
    by: tuple[Grouping, ...]
    groups: tuple[MeasureGroup, ...]
    episodes: int  # episodes read
    policy_versions: tuple[str, ...]  # every `policy_version` on the events read, sorted
    observed_until: datetime | None  # the last instant the log shows (or the period's end, if earlier)
    step_up_causes: dict[str, int] = field(default_factory=dict)  # the whole's step-ups by cause

    @property
    def total(self) -> MeasureGroup:
        return self.groups[0]


# -- one episode's facts ---------------------------------------------------------------------------------


@dataclass
class _Episode:
    episode_id: str
    client_id: str
    opened_at: datetime
    admitted_at: datetime | None = None
    admission_level: LevelOfCare | None = None
    closed_at: datetime | None = None
    discharge: DischargeReason | None = None
    facility: str = DEFAULT_FACILITY  # where it opened (an episode from before facilities: the default one)

    @property
    def cohort(self) -> str:
        at = self.admitted_at or self.opened_at
        return f"{at.year:04d}-{at.month:02d}"

    def dimensions(self, level: LevelOfCare | None) -> dict[Grouping, str]:
        """The group values of something counted at `level` in this episode."""
        return {
            Grouping.LEVEL: level.value if level else "none",
            Grouping.COHORT: self.cohort,
            Grouping.FACILITY: self.facility,
        }


class _Tally:
    """Numerators and denominators per group key, the whole under (): whole numbers (durations in microseconds),
    so the sums are exact and do not depend on the order the episodes come in."""

    def __init__(self, by: tuple[Grouping, ...]) -> None:
        self.by = by
        self.counts: dict[GroupKey, dict[str, list[int]]] = {}

    def add(self, dims: dict[Grouping, str], name: str, numerator: int, denominator: int) -> None:
        keys: list[GroupKey] = [()]
        if self.by:
            keys.append(tuple((g, dims[g]) for g in self.by))
        for key in keys:
            pair = self.counts.setdefault(key, {}).setdefault(name, [0, 0])
            pair[0] += numerator
            pair[1] += denominator

    def groups(self, day: timedelta) -> tuple[MeasureGroup, ...]:
        keys = sorted(self.counts.keys() | {()}, key=lambda k: (len(k) > 0, [v for _, v in k]))
        groups = []
        for key in keys:
            counted = self.counts.get(key, {})
            values = []
            for measure in MEASURES:
                numerator, denominator = counted.get(measure.name, (0, 0))
                values.append(_value(measure.name, numerator, denominator, day))
            groups.append(MeasureGroup(key, tuple(values)))
        return tuple(groups)


def _micros(span: timedelta) -> int:
    return span // timedelta(microseconds=1)


# The measures whose numerator is a duration (days) or whose denominator is one (client-weeks), or minutes.
_DAYS_NUMERATOR = frozenset({"length_of_stay", "days_positive_to_step_up"})
_WEEKS_DENOMINATOR = frozenset({"step_ups"})
_MINUTES = frozenset({"attendance_hours"})


def _value(name: str, numerator: int, denominator: int, day: timedelta) -> MeasureValue:
    if name in _DAYS_NUMERATOR:
        return MeasureValue(name, numerator / _micros(day), denominator)
    if name in _WEEKS_DENOMINATOR:
        return MeasureValue(name, numerator, denominator / _micros(day * 7))
    if name in _MINUTES:
        return MeasureValue(name, numerator / 60, denominator / 60)
    return MeasureValue(name, numerator, denominator)


def compute_measures(
    histories: Iterable[Sequence[DomainEvent]],
    period: Period,
    *,
    by: Sequence[Grouping] = (),
    day: timedelta = DAY,
    observed_until: datetime | None = None,
) -> Measures:
    """The outcome measures over `period`, from one event sequence per episode (in log order), grouped `by`.

    `day` is the length of a care day (a demo's compressed day; a calendar day otherwise). What the log shows
    ends at `observed_until` (default: the last event in the histories); windows still open then are left out."""
    grouping = tuple(dict.fromkeys(by))
    tally = _Tally(grouping)
    versions: set[str] = set()
    episodes: list[_Episode] = []
    last_seen: datetime | None = None
    causes: dict[str, int] = {}
    # With `observed_until` given, each episode is counted as it comes and its events are not kept; without it,
    # the end of what is observed is the last event, so the episodes wait until every one has been read.
    known_until = min(period.end, observed_until) if observed_until is not None else None
    waiting: list[tuple[_Episode, list[DomainEvent]]] = []
    for history in histories:
        events = history if isinstance(history, list) else list(history)
        if not events or not isinstance(events[0], EpisodeOpened):
            continue
        facts = _facts(events, versions)
        episodes.append(facts)
        last = max(event.occurred_at for event in events)
        last_seen = last if last_seen is None else max(last_seen, last)
        if known_until is not None:
            _count_episode(tally, facts, events, period, known_until, day, causes)
        else:
            waiting.append((facts, events))
    seen = observed_until or last_seen
    until = min(period.end, seen) if seen is not None and episodes else None
    if until is not None:
        for facts, events in waiting:
            _count_episode(tally, facts, events, period, until, day, causes)
        _count_readmissions(tally, episodes, period, until, day)
    return Measures(
        period, grouping, tally.groups(day), len(episodes), tuple(sorted(versions)), until, dict(sorted(causes.items()))
    )


def _facts(events: list[DomainEvent], versions: set[str]) -> _Episode:
    """What the whole episode is counted by (who, admitted when and where, closed how), and its policy versions."""
    opened = events[0]
    assert isinstance(opened, EpisodeOpened)
    facts = _Episode(opened.episode_id, opened.client_id, opened.occurred_at)
    facts.facility = opened.facility_id or DEFAULT_FACILITY
    for event in events:
        version = getattr(event, "policy_version", None)
        if version:
            versions.add(version)
        match event:
            case StayStarted(level=level) if facts.admitted_at is None:
                facts.admitted_at, facts.admission_level = event.occurred_at, level
            case EpisodeClosed(reason=reason):
                facts.closed_at, facts.discharge = event.occurred_at, reason
    return facts


def _count_episode(
    tally: _Tally,
    facts: _Episode,
    events: list[DomainEvent],
    period: Period,
    until: datetime,
    day: timedelta,
    causes: dict[str, int],
) -> None:
    found = stays(events)
    holds = _holds(events)
    _count_retention(tally, facts, period, until, day)
    _count_stays(tally, facts, found, events, period, until, holds, day)
    _count_step_ups(tally, facts, events, period, day, causes)
    _count_tests(tally, facts, events, period)
    _count_follow_ups_after_leaving(tally, facts, found, events, period, until, day)
    _count_aftercare(tally, facts, events, period, until, day)
    _count_attendance(tally, facts, found, events, period)
    if facts.closed_at is not None and period.holds(facts.closed_at):
        lost = facts.discharge is DischargeReason.LOST_TO_FOLLOW_UP
        level = found[-1].level if found else None
        tally.add(facts.dimensions(level), "lost_to_follow_up", 1 if lost else 0, 1)


def _count_retention(tally: _Tally, facts: _Episode, period: Period, until: datetime, day: timedelta) -> None:
    if facts.admitted_at is None or not period.holds(facts.admitted_at):
        return
    dims = facts.dimensions(facts.admission_level)
    for n in RETENTION_DAYS:
        mark = facts.admitted_at + day * n
        left_before = facts.closed_at is not None and facts.closed_at < mark
        if left_before and facts.discharge in (DischargeReason.DECEASED, DischargeReason.TRANSFERRED):
            continue  # not a loss to treatment
        if not left_before and mark > until:
            continue  # not yet observable
        tally.add(dims, f"retention_{n}d", 0 if left_before else 1, 1)


def _holds(events: list[DomainEvent]) -> list[tuple[datetime, datetime | None]]:
    found: list[tuple[datetime, datetime | None]] = []
    for event in events:
        if isinstance(event, EpisodePutOnHold):
            found.append((event.occurred_at, None))
        elif isinstance(event, EpisodeResumed) and found and found[-1][1] is None:
            found[-1] = (found[-1][0], event.occurred_at)
    return found


def _overlap(start: datetime, end: datetime, other_start: datetime, other_end: datetime) -> timedelta:
    return max(timedelta(0), min(end, other_end) - max(start, other_start))


def _count_stays(
    tally: _Tally,
    facts: _Episode,
    found: list[Stay],
    events: list[DomainEvent],
    period: Period,
    until: datetime,
    holds: list[tuple[datetime, datetime | None]],
    day: timedelta,
) -> None:
    ends = _stay_ends(events)
    for stay in found:
        dims = facts.dimensions(stay.level)
        # client-weeks at risk in the period: the stay's time inside it, less holds (clocks stop on hold)
        stay_end = stay.end or until
        at_risk = _overlap(stay.start, stay_end, period.start, period.end)
        for hold_start, hold_end in holds:
            at_risk -= _overlap(
                max(stay.start, hold_start), min(stay_end, hold_end or stay_end), period.start, period.end
            )
        if at_risk > timedelta(0):
            tally.add(dims, "step_ups", 0, _micros(at_risk))
        if stay.end is None or not period.holds(stay.end):
            continue
        end = ends.get(stay.end, StayEnd.OTHER)
        for name, kind in (
            ("completion", StayEnd.GOALS_MET),
            ("against_medical_advice", StayEnd.AGAINST_MEDICAL_ADVICE),
            ("dropped_out", StayEnd.DROPPED_OUT),
            ("administrative", StayEnd.ADMINISTRATIVE),
        ):
            tally.add(dims, name, 1 if end is kind else 0, 1)
        tally.add(dims, "length_of_stay", _micros(stay.end - stay.start), 1)


_DISCHARGE_ENDS = {
    DischargeReason.COMPLETED: StayEnd.GOALS_MET,
    DischargeReason.AGAINST_MEDICAL_ADVICE: StayEnd.AGAINST_MEDICAL_ADVICE,
    DischargeReason.LOST_TO_FOLLOW_UP: StayEnd.DROPPED_OUT,
    DischargeReason.ADMINISTRATIVE: StayEnd.ADMINISTRATIVE,
}


def _stay_ends(events: list[DomainEvent]) -> dict[datetime, StayEnd]:
    """How each stay ended, by the instant it ended (a move or the close)."""
    ends: dict[datetime, StayEnd] = {}
    previous: DomainEvent | None = None
    for event in events:
        if isinstance(event, LevelChanged):
            if event.direction is Direction.UP:
                ends[event.occurred_at] = StayEnd.STEPPED_UP
            elif (
                isinstance(previous, ReviewCompleted)
                and previous.outcome is ReviewOutcome.GOALS_MET
                and previous.occurred_at == event.occurred_at
            ):
                ends[event.occurred_at] = StayEnd.GOALS_MET
            else:
                ends[event.occurred_at] = StayEnd.OTHER
        elif isinstance(event, EpisodeClosed):
            ends[event.occurred_at] = _DISCHARGE_ENDS.get(event.reason, StayEnd.OTHER)
        previous = event
    return ends


def _step_up_cause(event: LevelChanged, previous: DomainEvent | None) -> StepUpCause | None:
    """Why `event` (a move up) happened, from the decision recorded with it (the event just before, at the same
    instant); None for what is not a step-up (a placement override corrects the placement)."""
    decision = previous if previous is not None and previous.occurred_at == event.occurred_at else None
    if isinstance(decision, PlacementOverridden):
        return None
    if event.cause_follow_up_id is not None:
        return StepUpCause.FOLLOW_UP
    if isinstance(decision, ReviewCompleted) and decision.outcome is ReviewOutcome.STEP_UP:
        return StepUpCause.REVIEW
    if isinstance(decision, LevelChangeDecided) or event.cause_test_id is None:
        return StepUpCause.CLINICIAN
    return StepUpCause.POSITIVE_TEST


def _count_step_ups(
    tally: _Tally, facts: _Episode, events: list[DomainEvent], period: Period, day: timedelta, causes: dict[str, int]
) -> None:
    first_positive: dict[str, datetime] = {}
    previous: DomainEvent | None = None
    for event in events:
        if isinstance(event, TestResultRecorded) and event.counts_as_positive:
            first_positive.setdefault(event.test_id, event.occurred_at)
        if isinstance(event, LevelChanged) and event.direction is Direction.UP and period.holds(event.occurred_at):
            cause = _step_up_cause(event, previous)
            if cause is not None:
                dims = facts.dimensions(event.from_level)
                tally.add(dims, "step_ups", 1, 0)
                for other in StepUpCause:
                    tally.add(dims, f"step_up_cause_{other.value}", 1 if other is cause else 0, 1)
                causes[cause.value] = causes.get(cause.value, 0) + 1
                positive_at = first_positive.get(event.cause_test_id or "")
                if cause is StepUpCause.POSITIVE_TEST and positive_at is not None:
                    tally.add(dims, "days_positive_to_step_up", _micros(event.occurred_at - positive_at), 1)
        previous = event


def _count_tests(tally: _Tally, facts: _Episode, events: list[DomainEvent], period: Period) -> None:
    """Each test with a result, once: its first result dates it, its latest (a correction) says what it was."""
    level_of: dict[str, LevelOfCare] = {}
    first_at: dict[str, datetime] = {}
    latest: dict[str, bool] = {}
    for event in events:
        if isinstance(event, TestResultRecorded):
            first_at.setdefault(event.test_id, event.occurred_at)
            latest[event.test_id] = event.counts_as_positive
        elif isinstance(event, TestOrdered):
            level_of[event.test_id] = event.level
    for test_id, positive in latest.items():
        if period.holds(first_at[test_id]):
            tally.add(facts.dimensions(level_of.get(test_id)), "positive_rate", 1 if positive else 0, 1)


def _contacts(events: list[DomainEvent]) -> list[datetime]:
    """When the client was seen after leaving: a follow-up that reached them, or a session attended."""
    return [
        event.occurred_at
        for event in events
        if isinstance(event, SessionAttended)
        or isinstance(event, FollowUpRecorded)
        and event.outcome is not FollowUpOutcome.NOT_REACHED
    ]


def _count_follow_ups_after_leaving(
    tally: _Tally,
    facts: _Episode,
    found: list[Stay],
    events: list[DomainEvent],
    period: Period,
    until: datetime,
    day: timedelta,
) -> None:
    contacts = _contacts(events)
    for number, stay in enumerate(found):
        after = found[number + 1] if number + 1 < len(found) else None
        if stay.level not in TWENTY_FOUR_HOUR_LEVELS or stay.end is None or not period.holds(stay.end):
            continue
        if after is not None and after.level in TWENTY_FOUR_HOUR_LEVELS:
            continue  # still in 24-hour care (withdrawal management into residential)
        if after is None and facts.discharge is DischargeReason.DECEASED:
            continue
        left = stay.end
        for n in FOLLOW_UP_DAYS:
            seen = any(left < at <= left + day * n for at in contacts)
            if not seen and left + day * n > until:
                continue  # the window is still open
            tally.add(facts.dimensions(stay.level), f"follow_up_{n}d", 1 if seen else 0, 1)


def _count_aftercare(
    tally: _Tally, facts: _Episode, events: list[DomainEvent], period: Period, until: datetime, day: timedelta
) -> None:
    point_of: dict[str, tuple[int, datetime]] = {}  # follow-up id -> (day in aftercare, due)
    outcome_of: dict[str, FollowUpOutcome] = {}
    for event in events:
        if isinstance(event, FollowUpsScheduled) and event.kind is FollowUpKind.AFTERCARE:
            for planned in event.follow_ups:
                days = round((planned.due_at - event.occurred_at) / day)
                if days in AFTERCARE_POINTS:
                    point_of[planned.follow_up_id] = (days, planned.due_at)
        elif isinstance(event, FollowUpRecorded):
            outcome_of[event.follow_up_id] = event.outcome
    dims = facts.dimensions(LevelOfCare.AFTERCARE)
    for follow_up_id, (days, due_at) in point_of.items():
        outcome = outcome_of.get(follow_up_id)
        if not period.holds(due_at) or (outcome is None and due_at > until):
            continue  # outside the period, or not yet due
        for kind in FollowUpOutcome:
            tally.add(dims, f"aftercare_{days}d_{kind.value}", 1 if outcome is kind else 0, 1)


def _count_attendance(
    tally: _Tally, facts: _Episode, found: list[Stay], events: list[DomainEvent], period: Period
) -> None:
    for event in events:
        if not isinstance(event, CareWeekClosed) or event.minimum_hours is None or not period.holds(event.ends_at):
            continue
        level = next((s.level for s in reversed(found) if s.start <= event.starts_at), None)
        dims = facts.dimensions(level)
        minimum = round(event.minimum_hours * 60)
        tally.add(dims, "attendance_weeks_met", 1 if event.attended_minutes >= minimum else 0, 1)
        tally.add(dims, "attendance_hours", event.attended_minutes, minimum)


def _count_readmissions(
    tally: _Tally, episodes: list[_Episode], period: Period, until: datetime, day: timedelta
) -> None:
    opened_by_client: dict[str, list[datetime]] = {}
    for facts in episodes:
        opened_by_client.setdefault(facts.client_id, []).append(facts.opened_at)
    for facts in episodes:
        closed = facts.closed_at
        if closed is None or not period.holds(closed) or facts.discharge is DischargeReason.DECEASED:
            continue
        later = [at for at in opened_by_client[facts.client_id] if at > closed]
        for n in READMISSION_DAYS:
            back = any(at <= closed + day * n for at in later)
            if not back and closed + day * n > until:
                continue  # the window is still open
            tally.add(facts.dimensions(facts.admission_level), f"readmission_{n}d", 1 if back else 0, 1)
