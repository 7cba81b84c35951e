"""Treatment plans: problems and goals by ASAM dimension, the plan an episode keeps, and its deadlines as policy
(`[plans]`: the initial plan due within hours of the placement, reviews at a cadence per level). Values and
their policy only; the decisions, the clock and the plan's status are in `domain.plan_decisions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from continuum.domain.errors import PolicyError
from continuum.domain.levels import LevelOfCare

DIMENSIONS = range(1, 7)  # the six ASAM dimensions (domain.assessment.Dimension)
MAX_PLAN_TEXT = 500  # the longest description of a problem or a goal
MAX_PLAN_ITEMS = 30  # problems, and goals, a plan holds at most


class PlanStage(StrEnum):
    """Which deadline of the plan is meant: the initial plan's, or its next review's."""

    INITIAL = "initial"
    REVIEW = "review"


@dataclass(frozen=True)
class PlanProblem:
    """A problem the plan addresses, under the ASAM dimension it belongs to."""

    dimension: int
    description: str


@dataclass(frozen=True)
class PlanGoal:
    """A goal of the plan, by its id (what a completion review names as met), under an ASAM dimension."""

    goal_id: str
    dimension: int
    description: str


@dataclass(frozen=True)
class TreatmentPlan:
    """The plan as it stands: the last recorded or reviewed problems and goals, and who signed it."""

    problems: tuple[PlanProblem, ...]
    goals: tuple[PlanGoal, ...]
    recorded_at: datetime
    signed_by: str
    client_signed: bool
    reviews: int = 0
    last_review_id: str | None = None
    reviewed_at: datetime | None = None
    goals_met: tuple[str, ...] = ()  # named met by completion reviews (a step down), in the order first named

    @property
    def goal_ids(self) -> tuple[str, ...]:
        return tuple(g.goal_id for g in self.goals)


@dataclass(frozen=True)
class PlansPolicy:
    initial_due_hours: float  # the initial plan is due this long (care-clock hours) after the placement
    review_every_days: dict[LevelOfCare, float]  # a level not named has no plan reviews
    escalate_after_days: float  # days past due before the clinical director is alerted

    def review_days(self, level: LevelOfCare | None) -> float | None:
        return self.review_every_days.get(level) if level is not None else None


def read_plans(raw: dict[str, Any]) -> PlansPolicy | None:
    """The `[plans]` table of a parsed policy, validated, errors naming the key; None if it has none (a policy
    from before treatment plans, which episodes started then keep: no plan deadlines)."""
    if "plans" not in raw:
        return None
    table = raw["plans"]
    if not isinstance(table, dict):
        raise PolicyError("policy key plans must be a table")
    unknown = sorted(set(table) - {"initial_due_within_hours", "escalate_after_days", "review_every_days"})
    if unknown:
        raise PolicyError(f"policy key plans.{unknown[0]} is not a key of [plans]")
    hours = _number(table, "initial_due_within_hours", "number of hours")
    if hours <= 0:
        raise PolicyError(
            f"policy key plans.initial_due_within_hours must be a positive number of hours, not {hours!r}"
        )
    escalate = _number(table, "escalate_after_days", "number of days")
    cadence = table.get("review_every_days")
    if not isinstance(cadence, dict):
        raise PolicyError("policy key plans.review_every_days must be a table of level = days")
    every: dict[LevelOfCare, float] = {}
    for name in cadence:
        key = f"plans.review_every_days.{name}"
        try:
            level = LevelOfCare(name)
        except ValueError:
            raise PolicyError(f"policy key {key}: {name!r} is not a level of care") from None
        days = _number(cadence, name, "number of days", key)
        if days <= 0:
            raise PolicyError(f"policy key {key} must be a positive number of days, not {days!r}")
        every[level] = days
    return PlansPolicy(hours, every, escalate)


def _number(table: dict[str, Any], name: str, what: str, key: str | None = None) -> float:
    value = table.get(name)
    key = key or f"plans.{name}"
    if value is None:
        raise PolicyError(f"policy key {key} is missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise PolicyError(f"policy key {key} must be a non-negative {what}, not {value!r}")
    return float(value)
