"""The one driver for domain scenarios: an episode run through `decide` and `fold`, as the workflow runs it.

A scenario keeps the episode's state, its own clock (`at`) and every event recorded; `clock` and `advance`
issue what the episode's clock (`next_due`) would, so reviews, follow-ups and flags fall due as in the
workflow, without Temporal. As the workflow does, the scenario draws a test schedule with a generator of
its own (seeded, so a scenario runs the same every time).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

from continuum.domain.clock import next_due
from continuum.domain.commands import (
    ChangeMedications,
    DrawTestSchedule,
    OpenEpisode,
    OrderTest,
    RecordAssessment,
    RecordReviewOutcome,
    RecordTestResult,
)
from continuum.domain.decisions import decide
from continuum.domain.episode import Episode, ReviewOutcome
from continuum.domain.events import DomainEvent, TestOrdered
from continuum.domain.fold import fold
from continuum.domain.levels import LevelOfCare
from continuum.domain.policy import Policy, default_policy_text, load_policy
from continuum.domain.testing import TestMethod, TestResult, draw_schedule

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)
POLICY = load_policy()
# The default policy less random drug testing: scenarios about the care pathway watch reviews and levels alone.
WITHOUT_TESTING_TEXT = default_policy_text().split("\n[drug_testing]")[0] + "\n"
WITHOUT_TESTING = load_policy(WITHOUT_TESTING_TEXT)


def policy_with(old: str, new: str, *, drug_testing: bool = True) -> Policy:
    """The default policy (less drug testing if asked) with one piece of its text changed."""
    text = default_policy_text() if drug_testing else WITHOUT_TESTING_TEXT
    assert old in text, old
    return load_policy(text.replace(old, new, 1))


class Scenario:
    """One episode driven through `decide` and `fold`, recording every event, on a clock of its own."""

    __test__ = False

    def __init__(self, policy: Policy = POLICY, at: datetime = T0) -> None:
        self.policy = policy
        self.at = at
        self.recorded: list[DomainEvent] = []
        self._state: Episode | None = None
        self._random = Random(f"{at.isoformat()}:drug-tests")

    @classmethod
    def opened(
        cls,
        ratings: tuple[int, ...],
        *,
        episode_id: str = "ep-1",
        medications: tuple[str, ...] = (),
        policy: Policy = POLICY,
    ) -> Scenario:
        """An episode opened with an assessment of `ratings` (and placed), on `medications` if any."""
        scenario = cls(policy)
        scenario.do(OpenEpisode(episode_id, "client-7", assessment=RecordAssessment(ratings, "clin-1")))
        if medications:
            scenario.do(ChangeMedications(medications, "clin-1"))
        return scenario

    @property
    def state(self) -> Episode:
        assert self._state is not None, "no episode was opened yet"
        return self._state

    def do(self, command: Any, after_days: float = 0) -> list[DomainEvent]:
        """Decide `command` now (after `after_days` more days), fold what it records, and return that."""
        self.wait(after_days)
        events = decide(self._state, command, self.policy, self.at)
        self._state = fold(events, self._state)
        self.recorded += events
        return events

    def wait(self, days: float) -> None:
        self.at += DAY * days

    def clock(self, until: datetime | None = None) -> Any:
        """The command the episode's clock issues next (None if nothing falls due by `until`); the scenario's
        clock moves to its instant."""
        due = next_due(self.state, self.policy, self.at, DAY)
        if due is None or (until is not None and due.at > until):
            assert until is not None, "nothing falls due"
            return None
        self.at = max(self.at, due.at)
        if isinstance(due.command, DrawTestSchedule) and due.command.draw is None and self.state.level is not None:
            return DrawTestSchedule(draw_schedule(self._random, self.state.level, self.at, self.policy.drug_testing))
        return due.command

    def advance(self, until: datetime) -> None:
        """Run what the episode's clock issues up to `until` (reviews requested, tests ordered, flags)."""
        while (command := self.clock(until)) is not None:
            self.do(command)
        self.at = until

    def step_down(self) -> list[DomainEvent]:
        """Run the clock to the review it requests, and record goals met."""
        assert self.state.review_after_days is not None and self.state.level_since is not None
        self.advance(self.state.level_since + DAY * self.state.review_after_days)
        assert self.state.pending_review is not None
        return self.do(RecordReviewOutcome(self.state.pending_review.review_id, ReviewOutcome.GOALS_MET, "ther-1"))

    def to_aftercare(self) -> list[DomainEvent]:
        """Step down at every review until the client is in aftercare; the events of the last step."""
        events: list[DomainEvent] = []
        while self.state.level is not LevelOfCare.AFTERCARE:
            events = self.step_down()
        return events

    def order(self) -> str:
        """A clinician orders a test now; its id."""
        [ordered] = self.do(OrderTest("clin-1"))
        assert isinstance(ordered, TestOrdered)
        return ordered.test_id

    def result(
        self,
        test_id: str,
        result: TestResult,
        *substances: str,
        method: TestMethod = TestMethod.CONFIRMED,
        ref: str = "lab-1",
        corrects: str | None = None,
    ) -> list[DomainEvent]:
        """The lab reports `result` for a specimen collected two hours ago."""
        return self.do(
            RecordTestResult(test_id, result, method, self.at - timedelta(hours=2), ref, substances, corrects)
        )

    def flags(self) -> set[str]:
        """The episode's flags as recorded, e.g. "review_overdue" or "lab_not_notified:<test id>"."""
        return {str(flag) for flag in self.state.flags}
