"""Random drug testing: the schedule draw, the tests' lifecycle values, and how a result is read.

Pure. The randomness comes in as a `random.Random` (in a workflow: `workflow.new_random("drug-tests")`),
so the same history replays to the same schedule, and every draw is recorded for the auditors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from random import Random
from typing import TYPE_CHECKING

from continuum.domain.levels import LevelOfCare
from continuum.domain.medications import MedicationCatalogue, expected_analytes, required_analytes

if TYPE_CHECKING:  # the policy names results in these terms, so it imports this module
    from continuum.domain.policy import DrugTestingPolicy


class TestResult(StrEnum):
    __test__ = False  # not a pytest class

    NEGATIVE = "negative"
    POSITIVE = "positive"
    DILUTE = "dilute"
    INVALID = "invalid"
    ADULTERATED = "adulterated"
    SUBSTITUTED = "substituted"
    REFUSED = "refused"
    NO_SHOW = "no_show"
    UNABLE_TO_VOID = "unable_to_void"


RETESTED = frozenset({TestResult.DILUTE, TestResult.INVALID, TestResult.UNABLE_TO_VOID})
NO_SPECIMEN = frozenset({TestResult.REFUSED, TestResult.NO_SHOW})  # nothing collected: no method, no collection time
ANALYSED = frozenset({TestResult.NEGATIVE, TestResult.POSITIVE})  # a specimen was read for substances


class TestMethod(StrEnum):
    __test__ = False

    PRESUMPTIVE = "presumptive"  # point of care or immunoassay
    CONFIRMED = "confirmed"  # laboratory GC-MS or LC-MS/MS


class OrderReason(StrEnum):
    SCHEDULED = "scheduled"
    RETEST = "retest"
    CLINICIAN = "clinician"


@dataclass(frozen=True)
class ResultReport:
    """What a lab (or a collection site) reported for a test."""

    result: TestResult
    substances: tuple[str, ...]
    method: TestMethod | None  # None: no specimen (refused, no-show)
    collected_at: datetime | None
    lab_reference: str
    counts_as_positive: bool


@dataclass(frozen=True)
class DrugTest:
    """One ordered test and what became of it. Corrections replace a report; the original stays in the log."""

    __test__ = False

    test_id: str
    reason: OrderReason
    level: LevelOfCare
    ordered_at: datetime
    result_due_at: datetime
    presumptive: ResultReport | None = None
    confirmed: ResultReport | None = None
    cancelled: bool = False
    overdue: bool = False
    retest_of: str | None = None
    collected_at: datetime | None = None
    observed: bool | None = None
    temperature_in_range: bool | None = None
    lab_id: str | None = None

    @property
    def awaiting_result(self) -> bool:
        return not self.cancelled and self.presumptive is None and self.confirmed is None


@dataclass(frozen=True)
class ScheduleDraw:
    """One random-interval draw: the window (as day offsets from its start), every eligible day with its
    weight, and the days chosen: one in each stratum of 7/per_week days."""

    level: LevelOfCare
    window_start: datetime
    window_days: int
    eligible_days: tuple[int, ...]
    weights: tuple[float, ...]
    chosen_days: tuple[int, ...]


def strata(window_days: int, per_week: float) -> list[range]:
    """The window cut into as many strata as there are tests, each a run of whole days."""
    count = max(1, round(window_days * per_week / 7))
    length = window_days / count
    return [range(math.ceil(k * length), math.ceil((k + 1) * length)) for k in range(count)]


def _weight(day: date, policy: DrugTestingPolicy) -> float:
    """Days after weekends (by weekday weight) and after holidays are likelier test days."""
    before = day - timedelta(days=1)
    after_holiday = (before.month, before.day) in policy.holidays
    return policy.weekday_weights[day.weekday()] * (policy.after_holiday_weight if after_holiday else 1.0)


def draw_schedule(rng: Random, level: LevelOfCare, window_start: datetime, policy: DrugTestingPolicy) -> ScheduleDraw:
    """Draw one day per stratum, weighted by weekday (days after weekends more likely, per policy)."""
    per_week = policy.per_week.get(level, 0.0)
    days = tuple(range(policy.window_days))
    weights = tuple(_weight(window_start.date() + timedelta(days=d), policy) for d in days)
    if per_week <= 0:
        return ScheduleDraw(level, window_start, policy.window_days, days, weights, ())
    chosen = tuple(
        rng.choices(list(stratum), weights=[weights[d] for d in stratum])[0]
        for stratum in strata(policy.window_days, per_week)
    )
    return ScheduleDraw(level, window_start, policy.window_days, days, weights, chosen)


@dataclass(frozen=True)
class Interpretation:
    counts_as_positive: bool
    needs_retest: bool
    awaits_confirmation: bool  # a presumptive counting positive, when the policy waits for the lab
    absent: tuple[str, ...]  # analytes the client's medications must show that this specimen did not
    rule: str  # why, in words a director reads


def normalise_substances(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(sorted({name.strip().lower() for name in names if name.strip()}))


def interpret(
    result: TestResult,
    substances: tuple[str, ...],
    method: TestMethod | None,
    medications: tuple[str, ...],
    policy: DrugTestingPolicy,
    catalogue: MedicationCatalogue | None = None,
) -> Interpretation:
    """Read a result against the client's prescriptions (what each may show, by the medication catalogue; as
    substance names without one) and the program's policy."""
    prescribed = normalise_substances(medications)
    found = set(normalise_substances(substances))
    unexpected = sorted(found - expected_analytes(prescribed, catalogue))
    counting = policy.counting_results
    if result is TestResult.POSITIVE:
        counts = bool(unexpected) and TestResult.POSITIVE in counting
        rule = (
            f"positive for {', '.join(unexpected)}, not prescribed"
            if unexpected
            else f"positive only for prescribed {', '.join(sorted(found)) or 'substances'}: expected"
        )
    else:
        counts = result in counting
        rule = f"{result.value} counts as positive under the policy" if counts else f"{result.value}"
    needs_retest = result in RETESTED and not counts
    if needs_retest:
        rule = f"{result.value}: retest ordered"
    absent = tuple(sorted(required_analytes(prescribed, catalogue) - found)) if result in ANALYSED else ()
    awaits = (
        counts
        and result is TestResult.POSITIVE
        and method is TestMethod.PRESUMPTIVE
        and policy.step_up_waits_for_confirmation
    )
    return Interpretation(counts, needs_retest, awaits, absent, rule)
