"""The care-pathway policy: data, validated on load, versioned by the hash of its text.

Every decision event records `policy_version`, so a decision can always be traced to the rules in force.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from typing import Any, TypeVar, cast

from continuum.domain.authorizations import UtilizationReviewPolicy, read_utilization_review
from continuum.domain.directory import ResourceDirectory, load_directory
from continuum.domain.episode import OverrideReason
from continuum.domain.errors import PolicyError
from continuum.domain.levels import AsamEdition, LevelOfCare
from continuum.domain.medications import SUBSTANCE, Medication, MedicationCatalogue
from continuum.domain.plans import PlansPolicy, read_plans
from continuum.domain.services import ServicesPolicy, read_services
from continuum.domain.testing import TestResult

E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True)
class PlacementRule:
    """If the rating of `dimension` is at least `at_least`: withdrawal management first, and/or a minimum level."""

    name: str
    dimension: int
    at_least: int
    minimum_level: LevelOfCare | None = None
    withdrawal_first: bool = False


class PositiveResultAction(StrEnum):
    AUTOMATIC = "automatic"  # a counting positive steps the client up at once
    REVIEW = "review"  # it opens a step-up review that a clinician confirms or declines


_MONTH_DAY = re.compile(r"(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class DrugTestingPolicy:
    per_week: dict[LevelOfCare, float]
    window_days: int
    result_window_days: float
    retest_within_days: float
    counting_results: frozenset[TestResult]  # the results that count as positive
    positive_result_action: PositiveResultAction
    step_up_waits_for_confirmation: bool
    step_up_review_due_days: float
    weekday_weights: tuple[float, ...]  # Monday first
    holidays: tuple[tuple[int, int], ...] = ()  # (month, day)
    after_holiday_weight: float = 1.0


NO_RANDOM_TESTING = DrugTestingPolicy(
    per_week={},
    window_days=28,
    result_window_days=3.0,
    retest_within_days=2.0,
    counting_results=frozenset(
        {TestResult.POSITIVE, TestResult.REFUSED, TestResult.NO_SHOW, TestResult.ADULTERATED, TestResult.SUBSTITUTED}
    ),
    positive_result_action=PositiveResultAction.AUTOMATIC,
    step_up_waits_for_confirmation=True,
    step_up_review_due_days=2.0,
    weekday_weights=(1.0,) * 7,
)


@dataclass(frozen=True)
class ReferralPolicy:
    purpose: str
    disclosed: tuple[str, ...]
    answer_within_days: float
    directory: ResourceDirectory


@dataclass(frozen=True)
class FollowUpPolicy:
    after_leaving_days: tuple[float, ...]
    aftercare_days: tuple[float, ...]
    then_every_days: float
    not_reached_limit: int


@dataclass(frozen=True)
class LevelChangePolicy:
    """When an override is the placement's, and who may move a client down outside a completion review."""

    placement_override_within_days: float  # of care-clock time from the placement, while no other move came
    director_step_down_reasons: frozenset[OverrideReason]  # the coded reasons a director's step down may give


DISCLOSABLE = ("episode_id", "referral_type", "level_of_care", "medications")


@dataclass(frozen=True)
class Policy:
    version: str
    asam_edition: AsamEdition
    stay_minimum_days: dict[LevelOfCare, float]
    review_due_days: float
    review_escalate_after_days: float
    extend_default_days: float
    step_down: dict[LevelOfCare, LevelOfCare]
    step_up: dict[LevelOfCare, LevelOfCare]
    re_entry_level: LevelOfCare
    placement_baseline: LevelOfCare
    after_withdrawal_minimum: LevelOfCare
    placement_rules: tuple[PlacementRule, ...]
    drug_testing: DrugTestingPolicy
    referrals: ReferralPolicy | None = None  # None: a policy from before referrals, or a program without them
    follow_up: FollowUpPolicy | None = None
    # A hold stops every clock of the episode (dues move by the time held); False only for histories recorded
    # before that rule, where a hold stopped the stay clock alone (the workflow decides which, by patch).
    hold_pauses_clocks: bool = True
    # None in a policy from before each rule, which old episodes carry and keep replaying under: an override
    # was accepted at any time and in any direction; a prescription named the substances a test may show.
    level_changes: LevelChangePolicy | None = None
    medications: MedicationCatalogue | None = None
    # None in a policy without `[services]` (every episode started before it): no attendance rules.
    services: ServicesPolicy | None = None
    # None in a policy without `[plans]` (every episode started before it): no treatment-plan deadlines.
    plans: PlansPolicy | None = None
    # None in a policy without `[utilization_review]` (every episode started before it): no authorizations.
    utilization_review: UtilizationReviewPolicy | None = None


def default_policy_text() -> str:
    return resources.files("continuum.domain").joinpath("policy.toml").read_text(encoding="utf-8")


@lru_cache(maxsize=16)
def load_policy(text: str | None = None, directory_text: str | None = None) -> Policy:
    """Parse and validate a policy file's text (the default one if None), with the resource directory its
    referrals go to (the default one if None); errors name the key.

    Cached: every episode workflow starts (and, once evicted from the worker's cache, replays) by loading
    its policy, and parsing and validating TOML each time cost a worker under a burst most of its CPU.
    A Policy is immutable by convention: nothing may change one it was given.
    """
    text = default_policy_text() if text is None else text
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"the policy is not valid TOML: {error}") from None
    reader = _Reader(raw)
    policy = Policy(
        version="sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16],
        asam_edition=reader.enum("asam_edition", AsamEdition),
        stay_minimum_days={level: reader.number(f"stay_minimum_days.{level.value}") for level in LevelOfCare},
        review_due_days=reader.number("reviews.due_within_days"),
        review_escalate_after_days=reader.number("reviews.escalate_after_days", allow_zero=True),
        extend_default_days=reader.number("reviews.extend_default_days"),
        step_down=reader.level_map("step_down"),
        step_up=reader.level_map("step_up"),
        re_entry_level=reader.level("aftercare.re_entry_level"),
        placement_baseline=reader.level("placement.baseline"),
        after_withdrawal_minimum=reader.level("placement.after_withdrawal_minimum"),
        placement_rules=reader.rules("placement.rules"),
        drug_testing=reader.drug_testing("drug_testing"),
        referrals=reader.referrals("referrals", directory_text),
        follow_up=reader.follow_up("follow_up"),
        level_changes=reader.level_changes("level_changes"),
        medications=reader.medications("medications"),
        services=read_services(raw),
        plans=read_plans(raw),
        utilization_review=read_utilization_review(raw),
    )
    for source, target in policy.step_down.items():
        if target.intensity >= source.intensity:
            raise PolicyError(f"step_down.{source.value}: {target.value} is not less intensive than {source.value}")
    for source, target in policy.step_up.items():
        if target.intensity <= source.intensity:
            raise PolicyError(f"step_up.{source.value}: {target.value} is not more intensive than {source.value}")
    return policy


class _Reader:
    """Typed access to the parsed TOML, each error naming the dotted key."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def get(self, key: str) -> Any:
        node: Any = self.raw
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise PolicyError(f"policy key {key} is missing")
            node = node[part]
        return node

    def enum(self, key: str, kind: type[E]) -> E:
        value = self.get(key)
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(v.value for v in kind)
            raise PolicyError(f"policy key {key}: {value!r} is not one of {allowed}") from None

    def level(self, key: str) -> LevelOfCare:
        return self.enum(key, LevelOfCare)

    def number(self, key: str, *, allow_zero: bool = False, what: str = "number of days") -> float:
        """A positive (or, with `allow_zero`, non-negative) number: days, a rate or a weight, as `what` says."""
        value = self.get(key)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or value < 0
            or (value == 0 and not allow_zero)
        ):
            raise PolicyError(
                f"policy key {key} must be a {'non-negative' if allow_zero else 'positive'} {what}, not {value!r}"
            )
        return float(value)

    def level_map(self, key: str) -> dict[LevelOfCare, LevelOfCare]:
        table = self.get(key)
        if not isinstance(table, dict):
            raise PolicyError(f"policy key {key} must be a table of level = level")
        return {self.enum_value(f"{key}.{k}", k): self.level(f"{key}.{k}") for k in table}

    def enum_value(self, key: str, value: str) -> LevelOfCare:
        try:
            return LevelOfCare(value)
        except ValueError:
            raise PolicyError(f"policy key {key}: {value!r} is not a level of care") from None

    def drug_testing(self, key: str) -> DrugTestingPolicy:
        if key not in self.raw:  # a policy from before random testing, or a program that does not test
            return NO_RANDOM_TESTING
        per_week = self.get(f"{key}.per_week")
        if not isinstance(per_week, dict):
            raise PolicyError(f"policy key {key}.per_week must be a table of level = tests per week")
        frequencies: dict[LevelOfCare, float] = {}
        for name in per_week:
            level = self.enum_value(f"{key}.per_week.{name}", name)
            if level is LevelOfCare.WITHDRAWAL_MANAGEMENT:
                raise PolicyError(
                    f"policy key {key}.per_week.{name}: there is no random testing during withdrawal management"
                )
            rate = self.number(f"{key}.per_week.{name}", what="number of tests a week")
            if rate > 7:
                raise PolicyError(f"policy key {key}.per_week.{name} must be at most 7 tests a week, not {rate!r}")
            frequencies[level] = rate
        window = self.number(f"{key}.window_days")
        if window != int(window) or window < 7:
            raise PolicyError(f"policy key {key}.window_days must be a whole number of days, at least 7")
        counting = self.get(f"{key}.counting_results")
        known = {r.value for r in TestResult if r is not TestResult.NEGATIVE}
        if not isinstance(counting, list) or not set(counting) <= known or "positive" not in counting:
            raise PolicyError(
                f"policy key {key}.counting_results must list results among {sorted(known)}, positive included"
            )
        weights = self.get(f"{key}.weekday_weights")
        if not isinstance(weights, dict) or set(weights) != set(WEEKDAYS):
            raise PolicyError(f"policy key {key}.weekday_weights must give a weight for each of {', '.join(WEEKDAYS)}")
        waits = self.get(f"{key}.step_up_waits_for_confirmation")
        if not isinstance(waits, bool):
            raise PolicyError(f"policy key {key}.step_up_waits_for_confirmation must be true or false")
        holidays = self.raw[key].get("holidays", [])
        if not isinstance(holidays, list) or not all(isinstance(h, str) and _MONTH_DAY.fullmatch(h) for h in holidays):
            raise PolicyError(f'policy key {key}.holidays must be a list of "MM-DD" dates')
        after_holiday = (
            self.number(f"{key}.after_holiday_weight", what="weight")
            if "after_holiday_weight" in self.raw[key]
            else 1.0
        )
        return DrugTestingPolicy(
            holidays=tuple((int(h[:2]), int(h[3:])) for h in holidays),
            after_holiday_weight=after_holiday,
            per_week=frequencies,
            window_days=int(window),
            result_window_days=self.number(f"{key}.result_window_days"),
            retest_within_days=self.number(f"{key}.retest_within_days"),
            counting_results=frozenset(TestResult(r) for r in counting),
            positive_result_action=self.enum(f"{key}.positive_result_action", PositiveResultAction),
            step_up_waits_for_confirmation=waits,
            step_up_review_due_days=self.number(f"{key}.step_up_review_due_days"),
            weekday_weights=tuple(self.number(f"{key}.weekday_weights.{day}", what="weight") for day in WEEKDAYS),
        )

    def referrals(self, key: str, directory_text: str | None) -> ReferralPolicy | None:
        if key not in self.raw:
            return None
        purpose = self.get(f"{key}.purpose")
        if not isinstance(purpose, str) or not re.fullmatch(r"[a-z_]{1,40}", purpose):
            raise PolicyError(f"policy key {key}.purpose must be a purpose code (lower-case letters and _)")
        disclosed = self.get(f"{key}.disclosed")
        if not isinstance(disclosed, list) or not disclosed or not set(disclosed) <= set(DISCLOSABLE):
            raise PolicyError(f"policy key {key}.disclosed must list items among {', '.join(DISCLOSABLE)}")
        return ReferralPolicy(
            purpose, tuple(disclosed), self.number(f"{key}.answer_within_days"), load_directory(directory_text)
        )

    def follow_up(self, key: str) -> FollowUpPolicy | None:
        if key not in self.raw:
            return None

        def day_list(name: str) -> tuple[float, ...]:
            values = self.get(f"{key}.{name}")
            if (
                not isinstance(values, list)
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values)
                or values != sorted(values)
            ):
                raise PolicyError(f"policy key {key}.{name} must be a rising list of positive numbers of days")
            return tuple(float(v) for v in values)

        limit = self.get(f"{key}.not_reached_limit")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise PolicyError(f"policy key {key}.not_reached_limit must be a whole number, at least 1")
        return FollowUpPolicy(
            day_list("after_leaving_days"), day_list("aftercare_days"), self.number(f"{key}.then_every_days"), limit
        )

    def level_changes(self, key: str) -> LevelChangePolicy | None:
        if key not in self.raw:
            return None
        reasons = self.get(f"{key}.director_step_down_reasons")
        known = {r.value for r in OverrideReason}
        if not isinstance(reasons, list) or not reasons or not set(reasons) <= known:
            raise PolicyError(f"policy key {key}.director_step_down_reasons must list reasons among {sorted(known)}")
        return LevelChangePolicy(
            self.number(f"{key}.placement_override_within_days", allow_zero=True),
            frozenset(OverrideReason(r) for r in reasons),
        )

    def medications(self, key: str) -> MedicationCatalogue | None:
        if key not in self.raw:
            return None
        table = self.get(key)
        if not isinstance(table, dict) or not table:
            raise PolicyError(
                f"policy key {key} must be a table of medication = {{ shows = [...], must_show = [...] }}"
            )
        catalogue = {}
        for name, entry in table.items():
            where = f"{key}.{name}"
            if not SUBSTANCE.fullmatch(name):
                raise PolicyError(f"policy key {where}: a medication is named in lower-case letters, digits and -")
            if not isinstance(entry, dict):
                raise PolicyError(f"policy key {where} must be a table with shows and must_show")
            shows, must_show = self.analytes(f"{where}.shows"), self.analytes(f"{where}.must_show")
            if not must_show <= shows:
                raise PolicyError(f"policy key {where}.must_show must name analytes among its shows")
            catalogue[name] = Medication(name, shows, must_show)
        return MedicationCatalogue(catalogue)

    def analytes(self, key: str) -> frozenset[str]:
        values = self.get(key)
        if not isinstance(values, list) or not all(isinstance(v, str) and SUBSTANCE.fullmatch(v) for v in values):
            raise PolicyError(f"policy key {key} must list analytes (lower-case names)")
        return frozenset(values)

    def rules(self, key: str) -> tuple[PlacementRule, ...]:
        items = self.get(key)
        if not isinstance(items, list):
            raise PolicyError(f"policy key {key} must be an array of tables")
        rules = []
        for index, item in enumerate(items):
            where = f"{key}[{index}]"
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise PolicyError(f"policy key {where}.name must be text")
            dimension, at_least = item.get("dimension"), item.get("at_least")
            if dimension not in range(1, 7):
                raise PolicyError(f"policy key {where}.dimension must be an ASAM dimension 1-6, not {dimension!r}")
            if at_least not in range(0, 5):
                raise PolicyError(f"policy key {where}.at_least must be a rating 0-4, not {at_least!r}")
            minimum = item.get("minimum_level")
            withdrawal_first = item.get("withdrawal_first", False)
            if minimum is None and not withdrawal_first:
                raise PolicyError(f"policy key {where} needs minimum_level or withdrawal_first = true")
            rules.append(
                PlacementRule(
                    item["name"],
                    cast(int, dimension),  # checked above: a dimension 1-6 and a rating 0-4
                    cast(int, at_least),
                    self.enum_value(f"{where}.minimum_level", minimum) if minimum is not None else None,
                    bool(withdrawal_first),
                )
            )
        return tuple(rules)
