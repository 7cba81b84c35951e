"""The ASAM assessment (six dimensions rated 0-4) and placement: the least intensive level that is safe."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from continuum.domain.errors import CommandRejected
from continuum.domain.levels import LevelOfCare
from continuum.domain.policy import PlacementRule, Policy


class Dimension(IntEnum):
    ACUTE_INTOXICATION_WITHDRAWAL = 1
    BIOMEDICAL_CONDITIONS = 2
    EMOTIONAL_BEHAVIOURAL_COGNITIVE = 3
    READINESS_TO_CHANGE = 4
    RELAPSE_POTENTIAL = 5
    RECOVERY_ENVIRONMENT = 6


def validate_ratings(ratings: tuple[int, ...]) -> tuple[int, ...]:
    """Six whole ratings from 0 (no risk) to 4 (severe), in dimension order."""
    if len(ratings) != 6:
        raise CommandRejected(f"an assessment rates all six ASAM dimensions; {len(ratings)} ratings were given")
    for dimension, rating in zip(Dimension, ratings, strict=True):
        if isinstance(rating, bool) or not isinstance(rating, int) or not 0 <= rating <= 4:
            name = dimension.name.lower().replace("_", " ")
            raise CommandRejected(f"dimension {dimension.value} ({name}) must be rated 0-4, not {rating!r}")
    return tuple(ratings)


@dataclass(frozen=True)
class Placement:
    """Where treatment starts, where it goes after withdrawal management, and which rules said so."""

    recommended_level: LevelOfCare
    after_withdrawal_level: LevelOfCare | None
    rules_fired: tuple[str, ...]
    decided_by: str = ""  # in words: the rule that set the level, or the baseline


def place(ratings: tuple[int, ...], policy: Policy) -> Placement:
    """Apply the policy's placement rules to validated ratings."""
    fired = [rule for rule in policy.placement_rules if ratings[rule.dimension - 1] >= rule.at_least]
    treatment = policy.placement_baseline
    deciding: PlacementRule | None = None
    for rule in fired:
        if rule.minimum_level is not None and rule.minimum_level.intensity > treatment.intensity:
            treatment, deciding = rule.minimum_level, rule
    if deciding is not None:
        why = (
            f"rule {deciding.name}: dimension {deciding.dimension} rated {ratings[deciding.dimension - 1]}"
            f" (at least {deciding.at_least}) -> {treatment.value}"
        )
    elif fired:
        names = ", ".join(r.name for r in fired)
        why = f"baseline {treatment.value}: the rules that fired ({names}) name no higher level"
    else:
        why = f"baseline {treatment.value}: no rule fired"
    withdrawal = next((rule for rule in fired if rule.withdrawal_first), None)
    if withdrawal is not None:
        after = (
            treatment
            if treatment.intensity >= policy.after_withdrawal_minimum.intensity
            else policy.after_withdrawal_minimum
        )
        why = (
            f"rule {withdrawal.name}: dimension {withdrawal.dimension} rated {ratings[withdrawal.dimension - 1]}"
            f" (at least {withdrawal.at_least}) -> withdrawal management first, then {after.value}"
            + (f"; {why}" if deciding is not None else "")
        )
        return Placement(LevelOfCare.WITHDRAWAL_MANAGEMENT, after, tuple(r.name for r in fired), why)
    return Placement(treatment, None, tuple(r.name for r in fired), why)
