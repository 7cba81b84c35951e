"""Treatment plans: recording the initial plan and its reviews, the deadlines the care clock keeps (an overdue plan
is escalated to the clinical director like an overdue completion review), and the plan's status as reads show it.

The initial plan is due `[plans].initial_due_within_hours` after the placement; each plan or review sets the next
review at the cadence of the client's level then. A hold moves the due date by the time held (`domain.fold`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from continuum.domain.assessment import Dimension
from continuum.domain.commands import (
    Command,
    EscalateTreatmentPlan,
    RecordPlanReview,
    RecordReviewOutcome,
    RecordTreatmentPlan,
)
from continuum.domain.episode import Episode, EpisodeStatus, ReviewOutcome
from continuum.domain.errors import CommandInvalid, CommandRejected
from continuum.domain.events import (
    DomainEvent,
    FlagCleared,
    FlagRaised,
    TreatmentPlanEscalated,
    TreatmentPlanRecorded,
    TreatmentPlanReviewed,
)
from continuum.domain.flags import Flag, FlagFamily
from continuum.domain.ids import field_id
from continuum.domain.plans import (
    DIMENSIONS,
    MAX_PLAN_ITEMS,
    MAX_PLAN_TEXT,
    PlanGoal,
    PlanProblem,
    PlansPolicy,
    PlanStage,
    TreatmentPlan,
)
from continuum.domain.policy import Policy
from continuum.domain.values import text_problem

PLAN_OVERDUE = Flag(FlagFamily.PLAN_OVERDUE)
HOUR = 1 / 24  # of a care-clock day


def initial_plan_due(policy: Policy, placed_at: datetime, day: timedelta) -> datetime | None:
    """When the initial plan is due for a placement at `placed_at` (None under a policy without `[plans]`)."""
    plans = policy.plans
    return placed_at + day * (plans.initial_due_hours * HOUR) if plans is not None else None


# -- the clock -------------------------------------------------------------------------------------------------


def plan_dues(state: Episode, policy: Policy, day: timedelta) -> list[tuple[EscalateTreatmentPlan, datetime]]:
    """The plan's escalation, when its due date (plus the policy's delay) passes; nothing once escalated, while
    on hold (a resumption moves the date), or under a policy without `[plans]`."""
    plans = policy.plans
    due = state.plan_due_at
    if plans is None or due is None or state.plan_escalated or state.status is not EpisodeStatus.ACTIVE:
        return []
    return [(EscalateTreatmentPlan(), due + day * plans.escalate_after_days)]


# -- decisions ----------------------------------------------------------------------------------------------------


def admit_plans(command: Command) -> None:
    """A plan whose text could not be on record is refused where the command arrives (and in `decide`)."""
    if isinstance(command, (RecordTreatmentPlan, RecordPlanReview)):
        _check_contents(command.problems, command.goals)


def decide_plans(state: Episode, command: Command, policy: Policy, at: datetime, day: timedelta) -> list[DomainEvent]:
    plans = policy.plans
    if plans is None:
        raise CommandRejected("this episode's policy has no [plans]: it records no treatment plans")
    match command:
        case RecordTreatmentPlan():
            return _record(state, command, plans, policy.version, at, day)
        case RecordPlanReview():
            return _review(state, command, plans, policy.version, at, day)
        case EscalateTreatmentPlan():
            return _escalate(state, plans, policy.version, at, day)
    raise CommandRejected(f"{type(command).__name__} is not a treatment-plan command")


def _as_on_record(plan: TreatmentPlan, command: RecordTreatmentPlan | RecordPlanReview, signed_by: str) -> bool:
    """Whether the plan on record is the one `command` records (its repeat records nothing)."""
    return (plan.problems, plan.goals, plan.signed_by, plan.client_signed) == (
        command.problems,
        command.goals,
        signed_by,
        command.client_signed,
    )


def _record(
    state: Episode, command: RecordTreatmentPlan, plans: PlansPolicy, version: str, at: datetime, day: timedelta
) -> list[DomainEvent]:
    signed_by = _signer(command.signed_by)
    _check_contents(command.problems, command.goals)
    _placed(state)
    plan = state.plan
    if plan is not None:
        if plan.reviews == 0 and _as_on_record(plan, command, signed_by):
            return []  # the same plan again: already on record
        raise CommandRejected("a treatment plan is already on record; record a plan review to revise it")
    recorded = TreatmentPlanRecorded(
        state.episode_id,
        at,
        command.problems,
        command.goals,
        signed_by,
        command.client_signed,
        state.level,
        _next_review(state, plans, at, day),
        version,
    )
    return [recorded, *_cleared(state, at)]


def _review(
    state: Episode, command: RecordPlanReview, plans: PlansPolicy, version: str, at: datetime, day: timedelta
) -> list[DomainEvent]:
    signed_by = _signer(command.signed_by)
    field_id("review_id", command.review_id)
    _check_contents(command.problems, command.goals)
    _placed(state)
    plan = state.plan
    if plan is None:
        raise CommandRejected("no treatment plan is on record yet; record the initial plan first")
    if plan.last_review_id == command.review_id:
        if _as_on_record(plan, command, signed_by):
            return []  # the same review again: already on record
        raise CommandRejected(f"plan review {command.review_id} was already recorded, as another review")
    reviewed = TreatmentPlanReviewed(
        state.episode_id,
        at,
        command.review_id,
        command.problems,
        command.goals,
        signed_by,
        command.client_signed,
        state.level,
        _next_review(state, plans, at, day),
        version,
    )
    return [reviewed, *_cleared(state, at)]


def _escalate(state: Episode, plans: PlansPolicy, version: str, at: datetime, day: timedelta) -> list[DomainEvent]:
    due = state.plan_due_at
    if due is None or state.plan_escalated or at < due + day * plans.escalate_after_days:
        raise CommandRejected("no treatment plan is overdue")
    stage = PlanStage.INITIAL if state.plan is None else PlanStage.REVIEW
    what = "the initial treatment plan" if stage is PlanStage.INITIAL else "the treatment plan's review"
    reason = f"{what} was due {due.isoformat()}: the clinical director is alerted"
    return [
        TreatmentPlanEscalated(state.episode_id, at, stage, due, version),
        FlagRaised(state.episode_id, at, PLAN_OVERDUE, reason),
    ]


def check_goals_met(state: Episode, command: RecordReviewOutcome) -> tuple[str, ...]:
    """The plan goals a completion review names as met, checked against the plan (CommandInvalid, naming the
    field, for a goal the plan does not have, a goal named twice, or goals with another outcome)."""
    goals = tuple(command.goals_met)
    if not goals:
        return goals
    if command.outcome is not ReviewOutcome.GOALS_MET:
        raise CommandInvalid(f"goals_met: only a goals_met outcome names plan goals met, not {command.outcome.value}")
    if state.plan is None:
        raise CommandInvalid("goals_met: no treatment plan is on record, so no plan goal can be met")
    known = state.plan.goal_ids
    for index, goal_id in enumerate(goals):
        if goal_id not in known:
            raise CommandInvalid(
                f"goals_met[{index}]: {goal_id!r} is not a goal of the treatment plan ({', '.join(known)})"
            )
        if goal_id in goals[:index]:
            raise CommandInvalid(f"goals_met[{index}]: goal {goal_id} is named twice")
    return goals


def _next_review(state: Episode, plans: PlansPolicy, at: datetime, day: timedelta) -> datetime | None:
    days = plans.review_days(state.level)
    return at + day * days if days is not None else None


def _cleared(state: Episode, at: datetime) -> list[DomainEvent]:
    return [FlagCleared(state.episode_id, at, PLAN_OVERDUE)] if PLAN_OVERDUE in state.flags else []


def _placed(state: Episode) -> None:
    if state.placed_at is None:
        raise CommandRejected("the client has not been assessed and placed yet; record the assessment first")


def _signer(value: str) -> str:
    return field_id("signed_by", value)


def _check_contents(problems: tuple[PlanProblem, ...], goals: tuple[PlanGoal, ...]) -> None:
    """Problems and goals each under an ASAM dimension, with text that can be on record; goal ids unique."""
    if not problems:
        raise CommandInvalid("problems: a treatment plan names at least one problem")
    if not goals:
        raise CommandInvalid("goals: a treatment plan names at least one goal")
    items: tuple[tuple[str, tuple[PlanProblem | PlanGoal, ...]], ...] = (("problems", problems), ("goals", goals))
    for name, listed in items:
        if len(listed) > MAX_PLAN_ITEMS:
            raise CommandInvalid(f"{name}: a treatment plan names at most {MAX_PLAN_ITEMS} {name}")
        for index, item in enumerate(listed):
            _check_item(f"{name}[{index}]", item.dimension, item.description)
    seen: set[str] = set()
    for index, goal in enumerate(goals):
        field_id(f"goals[{index}].goal_id", goal.goal_id)
        if goal.goal_id in seen:
            raise CommandInvalid(f"goals[{index}].goal_id: goal {goal.goal_id} appears twice in the plan")
        seen.add(goal.goal_id)


def _check_item(where: str, dimension: int, description: str) -> None:
    if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension not in DIMENSIONS:
        names = ", ".join(f"{d.value} {d.name.lower()}" for d in Dimension)
        raise CommandInvalid(f"{where}.dimension: {dimension!r} is not an ASAM dimension ({names})")
    if not isinstance(description, str) or not description.strip() or len(description) > MAX_PLAN_TEXT:
        raise CommandInvalid(f"{where}.description: 1-{MAX_PLAN_TEXT} characters of text")
    problem = text_problem(description)
    if problem is not None:
        raise CommandInvalid(f"{where}.description: {problem}")


# -- what reads show -------------------------------------------------------------------------------------------------


class PlanStanding(StrEnum):
    NONE = "none"  # no deadline: before the placement, closed, or a policy without `[plans]`
    DUE = "due"  # no plan yet; the initial plan is due
    CURRENT = "current"  # a plan is on record, its next review not yet due
    OVERDUE = "overdue"  # the initial plan or the review is past its due date


@dataclass(frozen=True)
class PlanStatus:
    """The plan as a director sees it: whether one is on record, what is due next and whether it is overdue."""

    status: PlanStanding
    due_stage: PlanStage | None
    due_at: datetime | None
    overdue: bool
    escalated: bool
    recorded_at: datetime | None
    signed_by: str | None
    client_signed: bool | None
    reviews: int
    last_review_id: str | None
    last_reviewed_at: datetime | None
    next_review_at: datetime | None
    goals: tuple[PlanGoal, ...]
    problems: tuple[PlanProblem, ...]
    goals_met: tuple[str, ...]


def plan_status(state: Episode, now: datetime) -> PlanStatus:
    """The plan's status at `now`: overdue once its due date has passed (escalation follows per the policy)."""
    plan = state.plan
    due = state.plan_due_at
    overdue = state.plan_escalated or (due is not None and state.status is EpisodeStatus.ACTIVE and now >= due)
    if due is None and plan is None:
        status = PlanStanding.NONE
    elif overdue:
        status = PlanStanding.OVERDUE
    else:
        status = PlanStanding.DUE if plan is None else PlanStanding.CURRENT
    return PlanStatus(
        status=status,
        due_stage=None if due is None else (PlanStage.INITIAL if plan is None else PlanStage.REVIEW),
        due_at=due,
        overdue=overdue,
        escalated=state.plan_escalated,
        recorded_at=plan.recorded_at if plan else None,
        signed_by=plan.signed_by if plan else None,
        client_signed=plan.client_signed if plan else None,
        reviews=plan.reviews if plan else 0,
        last_review_id=plan.last_review_id if plan else None,
        last_reviewed_at=plan.reviewed_at if plan else None,
        next_review_at=due if plan is not None else None,
        goals=plan.goals if plan else (),
        problems=plan.problems if plan else (),
        goals_met=plan.goals_met if plan else (),
    )
