"""Policy simulation on hand-built logs: the current policy reproduces the record exactly; a proposed one shows
what it changes, and counts what the past cannot tell."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from continuum.domain.aftercare import FollowUpOutcome
from continuum.domain.authorizations import (
    AuthorizationDecision,
    AuthorizationUnit,
    ConcurrentReviewOutcome,
    DenialReason,
)
from continuum.domain.commands import (
    Discharge,
    OpenEpisode,
    OrderTest,
    PutOnHold,
    RecordAssessment,
    RecordAuthorizationDecision,
    RecordConcurrentReview,
    RecordFollowUpOutcome,
    RecordPlanReview,
    RecordReviewOutcome,
    RecordTestResult,
    RecordTreatmentPlan,
    RequestAuthorization,
    Resume,
)
from continuum.domain.comparison import compare, summarise
from continuum.domain.episode import DischargeReason, HoldReason, ReviewOutcome
from continuum.domain.errors import CommandRejected
from continuum.domain.events import DomainEvent, TestOrdered
from continuum.domain.fold import fold
from continuum.domain.levels import LevelOfCare as L
from continuum.domain.plans import PlanGoal, PlanProblem
from continuum.domain.policy import Policy, default_policy_text, load_policy
from continuum.domain.retention import retire
from continuum.domain.simulation import NO_REVIEW, simulate
from continuum.domain.testing import TestMethod, TestResult
from continuum.simulations import Period, PeriodInvalid
from tests.unit.scenario import DAY, POLICY, Scenario


class Recorded(Scenario):
    """A scenario recorded as the workflow records: the clock caught up before every outside command, and the
    working state retired after every command."""

    __test__ = False

    def do(self, command: Any, after_days: float = 0) -> list[DomainEvent]:
        events = super().do(command, after_days)
        self._state = retire(self.state, self.at, DAY)
        return events

    def send(self, command: Any, after_days: float = 0) -> list[DomainEvent]:
        """An outside command `after_days` from now, after the clock issued what fell due meanwhile."""
        self.advance(self.at + DAY * after_days)
        try:
            return self.do(command)
        except CommandRejected:
            return []

    def awaiting(self) -> list[str]:
        return [t.test_id for t in self.state.tests if t.awaiting_result]


def journey(ratings: tuple[int, ...] = (1, 1, 1, 1, 1, 1), policy: Policy = POLICY) -> Recorded:
    """An IOP episode with scheduled tests answered, a positive, reviews (one extended), holds and aftercare."""
    r = Recorded(policy)
    r.do(_open(ratings))
    r.do(_assess(ratings))
    for day in range(1, 200, 3):
        r.advance(r.at + DAY * 3)
        for test_id in r.awaiting():
            positive = day in (22, 100)
            result = TestResult.POSITIVE if positive else TestResult.NEGATIVE
            r.send(
                RecordTestResult(
                    test_id,
                    result,
                    TestMethod.CONFIRMED,
                    r.at - timedelta(hours=2),
                    f"lab-{test_id}",
                    ("cocaine",) if positive else (),
                )
            )
        pending = r.state.pending_review
        if pending is not None:
            outcome = ReviewOutcome.EXTEND if day < 40 else ReviewOutcome.GOALS_MET
            r.send(
                RecordReviewOutcome(
                    pending.review_id, outcome, "ther-1", 10 if outcome is ReviewOutcome.EXTEND else None
                )
            )
        if day == 61:
            r.send(PutOnHold(HoldReason.HOSPITALISED))
        if day == 67:
            r.send(Resume())
        if day == 70:
            r.send(OrderTest("clin-1"))
        for follow_up in r.state.follow_ups:
            if follow_up.requested_at is not None and follow_up.outcome is None:
                r.send(RecordFollowUpOutcome(follow_up.follow_up_id, FollowUpOutcome.ABSTINENT, "outreach-1"))
    r.send(Discharge(DischargeReason.TRANSFERRED, "moved away"), 1)
    return r


def _open(ratings: tuple[int, ...]) -> OpenEpisode:
    return OpenEpisode("ep-1", "client-7")


def _assess(ratings: tuple[int, ...]) -> RecordAssessment:
    return RecordAssessment(ratings, "clin-1")


def test_the_current_policy_reproduces_a_long_journey_exactly() -> None:
    recorded = journey()
    kinds = {type(e).__name__ for e in recorded.recorded}
    assert {"TestScheduleDrawn", "TestResultRecorded", "ReviewCompleted", "EpisodeResumed", "LevelChanged"} <= kinds
    simulated = simulate("ep-1", recorded.recorded, POLICY, DAY)
    assert simulated.events == tuple(recorded.recorded)
    assert (simulated.refused, simulated.results_dropped, simulated.tests_without_result) == ((), 0, 0)
    assert simulated.draws_new == 0 and simulated.draws_reused > 3
    comparison = compare(recorded.recorded, simulated, DAY)
    assert comparison.unchanged and not comparison.step_ups_added and not comparison.step_ups_removed
    assert fold(simulated.events) == fold(recorded.recorded)


def test_the_clock_acts_at_the_recorded_instant_not_its_due_when_the_timer_fired_late() -> None:
    recorded = Recorded(load_policy(_without_testing()))
    recorded.do(_open((1, 1, 1, 1, 1, 1)))
    recorded.do(_assess((1, 1, 1, 1, 1, 1)))
    recorded.wait(30.5)  # the review fell due at day 30; the worker was down and caught up half a day late
    recorded.advance(recorded.at)
    review = recorded.state.pending_review
    assert review is not None and review.requested_at == recorded.at
    simulated = simulate("ep-1", recorded.recorded, recorded.policy, DAY)
    assert simulated.events == tuple(recorded.recorded)


def _without_testing() -> str:
    return default_policy_text().split("\n[drug_testing]")[0] + "\n"


OUTSIDE = st.sampled_from(
    [
        "negative",
        "positive",
        "dilute",
        "goals_met",
        "extend",
        "step_up",
        "hold",
        "resume",
        "order",
        "follow_up",
        "discharge",
        "wait",
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ratings=st.tuples(*[st.integers(0, 4)] * 6),
    inputs=st.lists(st.tuples(OUTSIDE, st.floats(min_value=0, max_value=20)), max_size=25),
)
def test_any_recorded_episode_is_reproduced_exactly_under_its_own_policy(
    ratings: tuple[int, ...], inputs: list[tuple[str, float]]
) -> None:
    r = Recorded(POLICY)
    r.do(_open(ratings))
    r.do(_assess(ratings))
    for n, (kind, days) in enumerate(inputs):
        r.advance(r.at + DAY * days)
        if r.state.status.value == "closed":
            break
        awaiting = r.awaiting()
        pending = r.state.pending_review
        match kind:
            case "negative" | "positive" | "dilute" if awaiting:
                substances = ("heroin",) if kind == "positive" else ()
                r.send(
                    RecordTestResult(awaiting[0], TestResult(kind), TestMethod.CONFIRMED, r.at, f"lab-{n}", substances)
                )
            case "goals_met" | "extend" | "step_up" if pending is not None:
                r.send(
                    RecordReviewOutcome(
                        pending.review_id, ReviewOutcome(kind), "ther-1", 7.5 if kind == "extend" else None
                    )
                )
            case "hold":
                r.send(PutOnHold(HoldReason.LEAVE))
            case "resume":
                r.send(Resume())
            case "order":
                r.send(OrderTest("clin-1"))
            case "follow_up":
                for f in r.state.follow_ups:
                    if f.requested_at is not None and f.outcome is None:
                        r.send(RecordFollowUpOutcome(f.follow_up_id, FollowUpOutcome.NOT_REACHED, "outreach-1"))
            case "discharge":
                r.send(Discharge(DischargeReason.AGAINST_MEDICAL_ADVICE))
    simulated = simulate("ep-1", r.recorded, POLICY, DAY)
    assert simulated.events == tuple(r.recorded)
    assert (simulated.refused, simulated.results_dropped, simulated.tests_without_result) == ((), 0, 0)


def _policy(old: str, new: str) -> Policy:
    text = default_policy_text()
    assert old in text
    return load_policy(text.replace(old, new, 1))


UNSTABLE_AT_2 = (
    'name = "unstable_recovery_environment"\ndimension = 6\nat_least = 3',
    'name = "unstable_recovery_environment"\ndimension = 6\nat_least = 2',
)


def test_a_lower_placement_threshold_places_the_client_at_residential_and_shows_the_change() -> None:
    recorded = journey((1, 1, 1, 1, 1, 2))
    proposed = _policy(*UNSTABLE_AT_2)
    simulated = simulate("ep-1", recorded.recorded, proposed, DAY)
    comparison = compare(recorded.recorded, simulated, DAY)
    assert comparison.recorded.placement is L.INTENSIVE_OUTPATIENT
    assert comparison.simulated.placement is L.RESIDENTIAL and comparison.placement_changed
    residential = comparison.recorded.days_at_level["residential"]  # the recorded journey's step-up
    assert comparison.simulated.days_at_level["residential"] > residential
    assert not comparison.unchanged
    cohort = summarise(
        [comparison, compare(journey().recorded, simulate("ep-1", journey().recorded, proposed, DAY), DAY)]
    )
    assert cohort.episodes == 2 and cohort.placements_changed == 1
    assert cohort.placement_changes == {"intensive_outpatient -> residential": 1}


def test_a_proposed_step_up_target_adds_and_removes_step_ups() -> None:
    recorded = journey()
    proposed = _policy('intensive_outpatient = "residential"', 'intensive_outpatient = "partial_hospitalization"')
    comparison = compare(recorded.recorded, simulate("ep-1", recorded.recorded, proposed, DAY), DAY)
    removed = [(s.from_level, s.to_level) for s in comparison.step_ups_removed]
    added = [(s.from_level, s.to_level) for s in comparison.step_ups_added]
    assert (L.INTENSIVE_OUTPATIENT, L.RESIDENTIAL) in removed
    assert (L.INTENSIVE_OUTPATIENT, L.PARTIAL_HOSPITALIZATION) in added


def test_a_different_test_frequency_drops_results_and_leaves_new_tests_without_one() -> None:
    recorded = journey()
    proposed = _policy("intensive_outpatient = 2", "intensive_outpatient = 1")
    simulated = simulate("ep-1", recorded.recorded, proposed, DAY)
    assert simulated.draws_new > 0
    assert simulated.results_dropped > 0  # results for tests the proposed schedule never ordered
    assert simulated.tests_without_result > 0  # tests it ordered on other days, which nobody answered
    ordered = [e for e in simulated.events if isinstance(e, TestOrdered)]
    assert len(ordered) < sum(isinstance(e, TestOrdered) for e in recorded.recorded)
    # the clinician's own order is an outside input: ordered in the simulation too, and its result kept
    assert any(e.reason.value == "clinician" for e in ordered)


def test_a_review_outcome_the_proposed_policy_has_no_review_for_is_counted_not_applied() -> None:
    recorded = journey()
    proposed = _policy("intensive_outpatient = 30\noutpatient = 30", "intensive_outpatient = 120\noutpatient = 30")
    simulated = simulate("ep-1", recorded.recorded, proposed, DAY)
    assert ("RecordReviewOutcome", NO_REVIEW) in simulated.refused
    assert compare(recorded.recorded, simulated, DAY).simulated.days_at_level["intensive_outpatient"] >= 120


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [("2026-13-01", None, "from"), (None, "tomorrow", "to"), ("2026-02-01", "2026-01-01", "to")],
)
def test_a_period_that_is_not_a_date_range_names_the_field(start: str | None, end: str | None, field: str) -> None:
    with pytest.raises(PeriodInvalid, match=f"^{field}: ") as raised:
        Period.parse(start, end)
    assert raised.value.field == field


def test_two_orders_at_one_instant_are_each_matched_to_their_recorded_test() -> None:
    r = Recorded(POLICY)
    r.do(_open((1, 1, 1, 1, 1, 1)))
    r.do(_assess((1, 1, 1, 1, 1, 1)))
    first, second = r.send(OrderTest("clin-1")), r.send(OrderTest("clin-2"))
    assert first and second and first[0].occurred_at == second[0].occurred_at
    simulated = simulate("ep-1", r.recorded, POLICY, DAY)
    assert simulated.events == tuple(r.recorded) and simulated.tests_without_result == 0


def test_treatment_plans_are_recovered_and_the_current_policy_reproduces_them() -> None:
    """A plan recorded after its escalation, a plan review, and a completion review naming the goals it found met:
    all outside inputs the simulation recovers, so the record comes back event for event."""
    problems = (PlanProblem(5, "relapse risk"),)
    goals = (PlanGoal("g1", 5, "30 days abstinent"),)
    r = Recorded(POLICY)
    r.do(_open((1, 1, 1, 1, 1, 1)))
    r.do(_assess((1, 1, 1, 1, 1, 1)))
    r.send(RecordTreatmentPlan(problems, goals, "clin-1", False), 2)  # a day late: escalated first
    r.send(RecordPlanReview("pr-1", problems, goals, "clin-1", True), 30)
    for _ in range(40):
        r.advance(r.at + DAY)
        for test_id in r.awaiting():
            r.send(RecordTestResult(test_id, TestResult.NEGATIVE, TestMethod.CONFIRMED, r.at, f"lab-{test_id}"))
        pending = r.state.pending_review
        if pending is not None:
            r.send(RecordReviewOutcome(pending.review_id, ReviewOutcome.GOALS_MET, "ther-1", None, ("g1",)))
            break
    kinds = [type(e).__name__ for e in r.recorded]
    assert {"TreatmentPlanEscalated", "TreatmentPlanRecorded", "TreatmentPlanReviewed", "ReviewCompleted"} <= set(kinds)
    simulated = simulate("ep-1", r.recorded, POLICY, DAY)
    assert simulated.events == tuple(r.recorded)
    assert simulated.refused == ()


def test_authorizations_are_recovered_and_the_current_policy_reproduces_them() -> None:
    """A request, an approval, the concurrent review the clock requested and escalated, an extension, the review
    recorded and a denial: outside inputs the simulation recovers, so the record comes back event for event."""
    r = Recorded(POLICY)
    r.do(_open((1, 1, 1, 1, 1, 1)))
    r.do(_assess((1, 1, 1, 1, 1, 1)))
    r.send(RequestAuthorization("payer-1", L.INTENSIVE_OUTPATIENT, AuthorizationUnit.DAYS, 5, "ur-1"), 0.5)
    approved = AuthorizationDecision.APPROVED
    r.send(RecordAuthorizationDecision("ep-1.A1", approved, "ur-1", "payer-1", "PA-1", r.at, r.at + DAY * 5, 5))
    r.advance(r.at + DAY * 6)
    for test_id in r.awaiting():
        r.send(RecordTestResult(test_id, TestResult.NEGATIVE, TestMethod.CONFIRMED, r.at, f"lab-{test_id}"))
    r.send(RecordAuthorizationDecision("ep-1.A1", AuthorizationDecision.EXTENDED, "ur-1", end=r.at + DAY * 4, units=4))
    r.send(RecordConcurrentReview("ep-1.A1", ConcurrentReviewOutcome.DISCHARGE_PLANNED, "ur-1"), 2)
    r.send(RequestAuthorization("payer-1", L.RESIDENTIAL, AuthorizationUnit.DAYS, 5, "ur-1"))
    denied = AuthorizationDecision.DENIED
    r.send(RecordAuthorizationDecision("ep-1.A2", denied, "ur-1", denial_reason=DenialReason.LEVEL_NOT_COVERED), 0.2)
    kinds = {type(e).__name__ for e in r.recorded}
    assert {"ConcurrentReviewRequested", "ConcurrentReviewEscalated", "AuthorizationExtended"} <= kinds
    assert {"ConcurrentReviewRecorded", "AuthorizationDecided"} <= kinds
    simulated = simulate("ep-1", r.recorded, POLICY, DAY)
    assert simulated.events == tuple(r.recorded)
    assert simulated.refused == ()
