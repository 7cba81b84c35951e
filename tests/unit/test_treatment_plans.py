"""Treatment plans: the initial plan due after the placement, reviews at a cadence per level, an overdue plan
escalated like an overdue completion review, holds that move the due date, and goals a step-down found met."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from continuum.domain.clock import next_due
from continuum.domain.commands import (
    Discharge,
    EscalateTreatmentPlan,
    PutOnHold,
    RecordPlanReview,
    RecordReviewOutcome,
    RecordTreatmentPlan,
    Resume,
)
from continuum.domain.episode import DischargeReason, HoldReason, ReviewOutcome
from continuum.domain.errors import CommandInvalid, CommandRejected, PolicyError
from continuum.domain.events import (
    EpisodeResumed,
    FlagCleared,
    FlagRaised,
    ReviewCompleted,
    StayStarted,
    TreatmentPlanEscalated,
    TreatmentPlanRecorded,
    TreatmentPlanReviewed,
)
from continuum.domain.levels import LevelOfCare as L
from continuum.domain.plan_decisions import PlanStanding, plan_status
from continuum.domain.plans import PlanGoal, PlanProblem, PlanStage
from continuum.domain.policy import default_policy_text, load_policy
from tests.unit.scenario import DAY, POLICY, T0, WITHOUT_TESTING, Scenario

MILD = (1, 1, 1, 1, 1, 1)
PROBLEMS = (
    PlanProblem(5, "daily alcohol use, two relapses last year"),
    PlanProblem(6, "lives with a drinking partner"),
)
GOALS = (PlanGoal("g1", 5, "30 days abstinent"), PlanGoal("g2", 6, "a sober living referral accepted"))
PLAN = RecordTreatmentPlan(PROBLEMS, GOALS, "clin-1", True)
HOURS = POLICY.plans.initial_due_hours if POLICY.plans else 0.0


def placed() -> Scenario:
    return Scenario.opened(MILD, policy=POLICY)


def test_the_default_policy_has_plans_due_in_a_day_and_reviews_per_level() -> None:
    assert POLICY.plans is not None
    assert POLICY.plans.initial_due_hours == 24 and POLICY.plans.escalate_after_days == 0
    assert POLICY.plans.review_every_days[L.INTENSIVE_OUTPATIENT] == 30
    assert WITHOUT_TESTING.plans is None  # the text before [drug_testing]: no plans, as episodes before them


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("initial_due_within_hours = 24", "initial_due_within_hours = 0", "plans.initial_due_within_hours"),
        ("initial_due_within_hours = 24", 'initial_due_within_hours = "24"', "plans.initial_due_within_hours"),
        ("escalate_after_days = 0          #", "escalate_after_days = -1          #", "plans.escalate_after_days"),
        ("\noutpatient = 90", "\noutpatient = 0", "plans.review_every_days.outpatient"),
        ("\naftercare = 90", "\nhalfway_house = 90", "plans.review_every_days.halfway_house"),
        ("initial_due_within_hours = 24", "initial_due_within_hourz = 24", "plans.initial_due_within_hourz"),
    ],
)
def test_a_malformed_plans_table_is_refused_naming_the_key(old: str, new: str, key: str) -> None:
    text = default_policy_text()
    start = text.index("[plans]")
    broken = text[:start] + text[start:].replace(old, new, 1)
    with pytest.raises(PolicyError, match=key.replace(".", r"\.")):
        load_policy(broken)


def test_the_placement_sets_the_initial_plan_due_and_the_clock_escalates_it() -> None:
    j = placed()
    [started] = [e for e in j.recorded if isinstance(e, StayStarted)]
    assert started.plan_due_at == T0 + timedelta(hours=HOURS)
    assert plan_status(j.state, j.at).status is PlanStanding.DUE
    with pytest.raises(CommandRejected, match="no treatment plan is overdue"):
        j.do(EscalateTreatmentPlan())
    j.advance(T0 + DAY * 2)
    escalated = [e for e in j.recorded if isinstance(e, TreatmentPlanEscalated)]
    assert [(e.stage, e.due_at, e.occurred_at) for e in escalated] == [
        (PlanStage.INITIAL, started.plan_due_at, started.plan_due_at)
    ]
    assert "plan_overdue" in j.flags()
    [raised] = [e for e in j.recorded if isinstance(e, FlagRaised) and e.flag == "plan_overdue"]
    assert "initial treatment plan" in raised.reason
    status = plan_status(j.state, j.at)
    assert status.status is PlanStanding.OVERDUE and status.escalated

    recorded = j.do(PLAN)
    assert [type(e) for e in recorded] == [TreatmentPlanRecorded, FlagCleared]
    assert "plan_overdue" not in j.flags()
    status = plan_status(j.state, j.at)
    assert status.status is PlanStanding.CURRENT and status.signed_by == "clin-1" and status.client_signed
    assert status.next_review_at == j.at + DAY * 30  # IOP's cadence


def test_a_plan_on_time_is_never_escalated_and_its_review_falls_due_at_the_cadence() -> None:
    j = placed()
    j.do(PLAN, after_days=0.5)
    j.advance(T0 + DAY * 20)
    assert not any(isinstance(e, TreatmentPlanEscalated) for e in j.recorded)
    j.advance(T0 + DAY * 31)
    [escalated] = [e for e in j.recorded if isinstance(e, TreatmentPlanEscalated)]
    assert escalated.stage is PlanStage.REVIEW and escalated.due_at == T0 + DAY * 30.5
    [reviewed, cleared] = j.do(RecordPlanReview("pr-1", PROBLEMS, GOALS[:1], "clin-2", False))
    assert isinstance(reviewed, TreatmentPlanReviewed) and isinstance(cleared, FlagCleared)
    status = plan_status(j.state, j.at)
    assert (status.reviews, status.last_review_id, status.client_signed) == (1, "pr-1", False)
    assert [g.goal_id for g in status.goals] == ["g1"]


def test_recording_the_same_plan_or_review_again_records_nothing() -> None:
    j = placed()
    j.do(PLAN)
    assert j.do(PLAN) == []
    with pytest.raises(CommandRejected, match="record a plan review"):
        j.do(RecordTreatmentPlan(PROBLEMS, GOALS[:1], "clin-1", True))
    review = RecordPlanReview("pr-1", PROBLEMS, GOALS, "clin-1", True)
    assert len(j.do(review)) == 1
    assert j.do(review) == []
    with pytest.raises(CommandRejected, match="pr-1 was already recorded"):
        j.do(RecordPlanReview("pr-1", PROBLEMS, GOALS[:1], "clin-1", True))


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (RecordTreatmentPlan((PlanProblem(7, "x"),), GOALS, "clin-1", True), r"problems\[0\]\.dimension"),
        (RecordTreatmentPlan(PROBLEMS, (PlanGoal("g1", 0, "x"),), "clin-1", True), r"goals\[0\]\.dimension"),
        (RecordTreatmentPlan(PROBLEMS, (GOALS[0], GOALS[0]), "clin-1", True), r"goals\[1\]\.goal_id: goal g1"),
        (RecordTreatmentPlan((), GOALS, "clin-1", True), "problems: "),
        (RecordTreatmentPlan(PROBLEMS, (), "clin-1", True), "goals: "),
        (RecordTreatmentPlan(PROBLEMS, GOALS, "Jane Doe", True), "signed_by: "),
        (RecordTreatmentPlan((PlanProblem(1, " "),), GOALS, "clin-1", True), r"problems\[0\]\.description"),
        (RecordTreatmentPlan((PlanProblem(1, "a\x00b"),), GOALS, "clin-1", True), r"problems\[0\]\.description"),
        (RecordTreatmentPlan(PROBLEMS, (PlanGoal("bad id!", 1, "x"),), "clin-1", True), r"goals\[0\]\.goal_id"),
    ],
)
def test_a_bad_plan_is_refused_naming_the_field_and_records_nothing(command: RecordTreatmentPlan, field: str) -> None:
    j = placed()
    before = j.state
    with pytest.raises(CommandInvalid, match=field):
        j.do(command)
    assert j.state is before


def test_no_plan_before_placement_no_review_before_a_plan_nothing_once_closed() -> None:
    j = Scenario(POLICY)
    from continuum.domain.commands import OpenEpisode

    j.do(OpenEpisode("ep-intake", "client-1"))
    with pytest.raises(CommandRejected, match="assessed"):
        j.do(PLAN)
    k = placed()
    with pytest.raises(CommandRejected, match="record the initial plan first"):
        k.do(RecordPlanReview("pr-1", PROBLEMS, GOALS, "clin-1", True))
    k.do(Discharge(DischargeReason.ADMINISTRATIVE))
    with pytest.raises(CommandRejected, match="closed"):
        k.do(PLAN)
    assert plan_status(k.state, k.at).status is PlanStanding.NONE


def test_a_policy_without_plans_refuses_them_and_keeps_no_deadline() -> None:
    j = Scenario.opened(MILD, policy=WITHOUT_TESTING)
    assert j.state.plan_due_at is None
    with pytest.raises(CommandRejected, match=r"no \[plans\]"):
        j.do(PLAN)


def test_a_hold_moves_the_plan_due_date_by_the_time_held() -> None:
    j = placed()
    j.do(PutOnHold(HoldReason.HOSPITALISED), after_days=0.25)
    j.wait(3)
    assert next_due(j.state, POLICY, j.at, DAY, drug_testing=False) is None
    [resumed] = j.do(Resume())
    assert isinstance(resumed, EpisodeResumed) and any("initial treatment plan due" in m for m in resumed.moved)
    assert j.state.plan_due_at == T0 + timedelta(hours=HOURS) + DAY * 3
    assert plan_status(j.state, j.at).status is PlanStanding.DUE


@settings(max_examples=60, deadline=None)
@given(
    holds=st.lists(st.tuples(st.floats(0.0, 2.0, allow_nan=False), st.floats(0.01, 5.0, allow_nan=False)), max_size=4)
)
def test_a_hold_never_makes_a_plan_overdue_earlier(holds: list[tuple[float, float]]) -> None:
    """However holds fall, the initial plan escalates no earlier than without them: at its due date plus the
    time held before it."""
    j = placed()
    due = T0 + timedelta(hours=HOURS)
    held = timedelta(0)
    for gap, length in holds:
        j.advance(j.at + DAY * gap)
        if j.state.plan_escalated:
            break
        j.do(PutOnHold(HoldReason.LEAVE))
        j.wait(length)
        j.do(Resume())
        held += DAY * length
    j.advance(j.at + DAY * 10)
    [escalated] = [e for e in j.recorded if isinstance(e, TreatmentPlanEscalated)]
    assert escalated.occurred_at >= due
    assert escalated.due_at == due + held


def test_a_step_down_review_records_the_plan_goals_it_found_met() -> None:
    j = placed()
    j.do(PLAN)
    j.advance(T0 + DAY * POLICY.stay_minimum_days[L.INTENSIVE_OUTPATIENT])
    assert j.state.pending_review is not None
    review_id = j.state.pending_review.review_id
    with pytest.raises(CommandInvalid, match=r"goals_met\[1\]: 'g9' is not a goal"):
        j.do(RecordReviewOutcome(review_id, ReviewOutcome.GOALS_MET, "ther-1", goals_met=("g1", "g9")))
    with pytest.raises(CommandInvalid, match=r"goals_met\[1\]: goal g1 is named twice"):
        j.do(RecordReviewOutcome(review_id, ReviewOutcome.GOALS_MET, "ther-1", goals_met=("g1", "g1")))
    with pytest.raises(CommandInvalid, match="only a goals_met outcome"):
        j.do(RecordReviewOutcome(review_id, ReviewOutcome.EXTEND, "ther-1", goals_met=("g1",)))
    events = j.do(RecordReviewOutcome(review_id, ReviewOutcome.GOALS_MET, "ther-1", goals_met=("g1",)))
    [completed] = [e for e in events if isinstance(e, ReviewCompleted)]
    assert completed.goals_met == ("g1",)
    assert plan_status(j.state, j.at).goals_met == ("g1",)
    assert j.state.level is L.OUTPATIENT


def test_goals_met_without_a_plan_are_refused() -> None:
    j = placed()
    j.advance(T0 + DAY * POLICY.stay_minimum_days[L.INTENSIVE_OUTPATIENT])
    assert j.state.pending_review is not None
    with pytest.raises(CommandInvalid, match="no treatment plan is on record"):
        j.do(
            RecordReviewOutcome(j.state.pending_review.review_id, ReviewOutcome.GOALS_MET, "ther-1", goals_met=("g1",))
        )
