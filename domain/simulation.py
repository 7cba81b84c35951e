"""Policy simulation: an episode's recorded outside inputs re-decided under another policy, on the pure domain.

The simulation runs the episode as the workflow does (`decide`, `fold`, `retire`, the care clock's
`next_due`), with nothing written and no workflow started. The clock acts at the instant the recorded clock
acted for the same command (a timer fires a little after its due; a command that arrives later catches the
clock up first), and at its due where the record has no such instant. A schedule draw the record holds for
the same level and window is reused when the proposed policy would draw from the same days and weights; any
other draw comes from a generator seeded by the episode and the window (the workflow's own seed is not in
the log). What the past cannot tell is counted, never guessed: a recorded result for a test the simulation
did not order is dropped, and a test it ordered that nobody ordered in the record has no result.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from random import Random

from continuum.domain.clock import Due, dues
from continuum.domain.commands import (
    CancelTest,
    CloseCareWeek,
    Command,
    DecideStepUp,
    DrawTestSchedule,
    EscalateConcurrentReview,
    EscalateReview,
    FlagLabNotNotified,
    FlagReferralUnanswered,
    MarkResultOverdue,
    OrderScheduledTest,
    RecordReviewOutcome,
    RecordSpecimenCollection,
    RecordTestResult,
    RequestConcurrentReview,
    RequestFollowUp,
    RequestReview,
    ReverseStepUp,
)
from continuum.domain.decisions import decide
from continuum.domain.episode import Episode, EpisodeStatus
from continuum.domain.errors import DomainError
from continuum.domain.events import DomainEvent, TestOrdered
from continuum.domain.fold import fold
from continuum.domain.policy import Policy
from continuum.domain.recovery import Input, RecordedEpisode, TestIdentity, TickKey, recover
from continuum.domain.retention import retire
from continuum.domain.testing import draw_schedule

END = 1 << 62  # a place after every recorded event
MAX_CLOCK_STEPS = 10_000  # per stretch between two inputs: a policy that loops its clock is cut off here
NO_REVIEW = "review outcome without a matching review"
NO_TEST = "input for a test the simulation did not order"


@dataclass(frozen=True)
class SimulatedEpisode:
    """One episode as the proposed policy would have run it, and what the record could not tell."""

    episode_id: str
    events: tuple[DomainEvent, ...]
    end: datetime | None  # where the record ends (the simulation stops there too)
    refused: tuple[tuple[str, str], ...] = ()  # (command, why): inputs the simulated episode did not accept
    results_dropped: int = 0  # recorded results (or corrections) for tests the simulation did not order
    tests_without_result: int = 0  # tests the simulation ordered that no recorded order matches
    draws_reused: int = 0
    draws_new: int = 0

    def refused_by_kind(self) -> dict[str, int]:
        return dict(Counter(command for command, _ in self.refused))


@dataclass
class _Run:
    """The working state of one simulated episode."""

    recorded: RecordedEpisode
    policy: Policy
    day: timedelta
    state: Episode | None = None
    now: datetime | None = None
    events: list[DomainEvent] = field(default_factory=list)
    tick_index: dict[TickKey, int] = field(default_factory=dict)
    by_identity: dict[TestIdentity, list[str]] = field(default_factory=dict)  # recorded test ids, in order
    recorded_to_simulated: dict[str, str] = field(default_factory=dict)
    simulated_to_recorded: dict[str, str] = field(default_factory=dict)
    unmatched_tests: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    results_dropped: int = 0
    draws_reused: int = 0
    draws_new: int = 0

    def record(self, events: list[DomainEvent], at: datetime) -> None:
        state = fold(events, self.state)
        assert state is not None
        self.state = retire(state, at, self.day)  # as the workflow does after every command
        self.events += events
        self.now = at
        for event in events:
            if isinstance(event, TestOrdered):
                same = self.by_identity.get(TestIdentity(event.reason, event.occurred_at))
                recorded_id = same.pop(0) if same else None  # two orders at one instant match in their order
                if recorded_id is None:
                    self.unmatched_tests += 1
                else:
                    self.recorded_to_simulated[recorded_id] = event.test_id
                    self.simulated_to_recorded[event.test_id] = recorded_id


def simulate(
    episode_id: str, events: Sequence[DomainEvent], policy: Policy, day: timedelta = timedelta(days=1)
) -> SimulatedEpisode:
    """Re-decide one recorded episode's outside inputs under `policy` (its events in order, as recorded)."""
    return simulate_recorded(recover(episode_id, events, day), policy, day)


def simulate_recorded(recorded: RecordedEpisode, policy: Policy, day: timedelta) -> SimulatedEpisode:
    day = recorded.day or day
    run = _Run(recorded, policy, day)
    for test_id, identity in recorded.tests.items():
        run.by_identity.setdefault(identity, []).append(test_id)
    for found in recorded.inputs:
        _run_clock(run, found.at, found.seq)
        command = _translated(run, found)
        if command is None:
            continue
        try:
            events = decide(run.state, command, policy, found.at, day)
        except DomainError as error:
            run.refused.append((type(command).__name__, str(error)))
            continue
        if events:
            run.record(events, found.at)
    if recorded.end is not None:
        _run_clock(run, recorded.end, END)
    return SimulatedEpisode(
        recorded.episode_id,
        tuple(run.events),
        recorded.end,
        tuple(run.refused),
        run.results_dropped,
        run.unmatched_tests,
        run.draws_reused,
        run.draws_new,
    )


_TEST_INPUTS = (RecordSpecimenCollection, RecordTestResult, CancelTest, DecideStepUp, ReverseStepUp, FlagLabNotNotified)


def _translated(run: _Run, found: Input) -> Command | None:
    """The input as the simulated episode knows it: its own ids for tests and reviews; None (counted) when it
    has no counterpart."""
    command = found.command
    if found.test_id is not None and isinstance(command, _TEST_INPUTS):
        simulated = run.recorded_to_simulated.get(found.test_id)
        if simulated is None:
            if isinstance(command, RecordTestResult):
                run.results_dropped += 1
            else:
                run.refused.append((type(command).__name__, NO_TEST))
            return None
        return dataclasses.replace(command, test_id=simulated)
    if isinstance(command, RecordReviewOutcome):
        pending = run.state.pending_review if run.state is not None else None
        if pending is None or pending.level is not found.review_level:
            run.refused.append((type(command).__name__, NO_REVIEW))
            return None
        return dataclasses.replace(command, review_id=pending.review_id)
    return command


def _run_clock(run: _Run, until: datetime, place: int) -> None:
    """Issue what the episode's clock has due before the input at `until` (recorded at `place`), as the
    workflow's timers and catch-up would; at the end of the record, what fell due before it ended. The record
    orders them: a command goes at the instant the recorded clock acted on it; one the record has no instant
    for goes at its due, but never before a command due earlier (the clock takes its dues in order)."""
    for _ in range(MAX_CLOCK_STEPS):
        state = run.state
        if state is None or state.status is EpisodeStatus.CLOSED or run.now is None:
            return
        chosen: tuple[datetime, int, Due] | None = None
        floor = run.now
        for n, due in enumerate(sorted(dues(state, run.policy, run.now, run.day), key=lambda d: d.at)):
            if due.at > until:
                break
            tick = _tick(run, due, state, until, place)
            at = tick if tick is not None else max(due.at, floor)
            floor = max(floor, at)
            if tick is None and at >= until:
                continue  # at the input's very instant, the record shows the input first
            if chosen is None or (at, n) < chosen[:2]:
                chosen = (at, n, due)
        if chosen is None:
            return
        at, _, due = chosen
        _claim(run, due, state, at)
        command = _filled(run, due.command, state, at)
        try:
            events = decide(state, command, run.policy, at, run.day)
        except DomainError:
            return  # the workflow retries it after the next change; so does the simulation
        if not events:
            return
        run.record(events, at)


def _key(run: _Run, due: Due, state: Episode) -> TickKey:
    return type(due.command).__name__, _subject(run, due.command, state)


def _subject(run: _Run, command: Command, state: Episode) -> str | None:
    """What a clock command is about, as `recovery.tick_of` names it in the record."""
    match command:
        case RequestReview() | DrawTestSchedule() | OrderScheduledTest():
            return state.level.value if state.level is not None else None
        case EscalateReview(review_id=subject):
            return subject  # (a requested review's id counts the episode's events: no subject across policies)
        case MarkResultOverdue(test_id=test_id):
            return run.simulated_to_recorded.get(test_id, "")
        case RequestFollowUp(follow_up_id=subject) | FlagReferralUnanswered(referral_id=subject):
            return subject
        case RequestConcurrentReview(authorization_id=subject) | EscalateConcurrentReview(authorization_id=subject):
            return subject
        case CloseCareWeek(week=week):
            return str(week)
    return None


def _tick(run: _Run, due: Due, state: Episode, until: datetime, place: int) -> datetime | None:
    """The instant the recorded clock acted on `due` (the same command and subject), if the record has one
    between the due and the next input (at `until`, recorded at `place`). The record's instants are the
    clock's own: a timer fires late by however long the worker took (on a compressed care day, that may be
    days of care), and a command that arrives in between catches the clock up first."""
    assert run.now is not None
    key = _key(run, due, state)
    instants = run.recorded.ticks.get(key, ())
    index = bisect.bisect_left(instants, (max(due.at, run.now), -1), lo=run.tick_index.get(key, 0))
    if index < len(instants) and instants[index] <= (until, place):
        return instants[index][0]
    return None


def _claim(run: _Run, due: Due, state: Episode, at: datetime) -> None:
    """The recorded instant `at` is taken by this command (and every earlier one of its kind is past)."""
    key = _key(run, due, state)
    instants = run.recorded.ticks.get(key, ())
    index = bisect.bisect_left(instants, (at, -1), lo=run.tick_index.get(key, 0))
    run.tick_index[key] = index + 1 if index < len(instants) and instants[index][0] == at else index


def _filled(run: _Run, command: Command, state: Episode, at: datetime) -> Command:
    """A clock command with what the workflow fills in: the schedule draw, the lab the orders go to."""
    if isinstance(command, DrawTestSchedule) and command.draw is None and state.level is not None:
        rng = Random(f"{run.recorded.episode_id}:{at.isoformat()}:drug-tests")
        fresh = draw_schedule(rng, state.level, at, run.policy.drug_testing)
        kept = run.recorded.draws.get((state.level, at))
        if kept is not None and (kept.window_days, kept.eligible_days, kept.weights, len(kept.chosen_days)) == (
            fresh.window_days,
            fresh.eligible_days,
            fresh.weights,
            len(fresh.chosen_days),
        ):
            run.draws_reused += 1
            return DrawTestSchedule(kept)
        run.draws_new += 1
        return DrawTestSchedule(fresh)
    if isinstance(command, OrderScheduledTest) and command.lab_id is None:
        return OrderScheduledTest(run.recorded.lab_id)
    return command
