"""Payer authorizations (utilization review): a request per episode and level, the payer's decision on it
(approved, partially approved, denied, extended), the concurrent reviews that fall due before it ends, and the
policy that says when (`[utilization_review]`). Values and their policy only; the decisions, the clock and the
three levels side by side are in `domain.authorization_decisions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from continuum.domain.errors import PolicyError
from continuum.domain.levels import LevelOfCare

MAX_UNITS = 10_000  # days or units a request asks for, or a decision approves, at most
MAX_AUTHORIZATION_NUMBER = 64  # the payer's authorization number, in characters
MAX_AUTHORIZED_DAYS_AHEAD = 731  # an authorization's period ends within two years of now


class AuthorizationUnit(StrEnum):
    """What a payer counts: days of a 24-hour or day level, or units (sessions, hours) of an outpatient one."""

    DAYS = "days"
    UNITS = "units"


class AuthorizationStatus(StrEnum):
    REQUESTED = "requested"  # awaiting the payer
    APPROVED = "approved"
    PARTIALLY_APPROVED = "partially_approved"  # fewer days or units than requested, or a shorter period
    DENIED = "denied"


class AuthorizationDecision(StrEnum):
    """What the utilization reviewer records of the payer's answer."""

    APPROVED = "approved"
    PARTIALLY_APPROVED = "partially_approved"
    DENIED = "denied"
    EXTENDED = "extended"  # a later end and more days or units, on an approved authorization


class DenialReason(StrEnum):
    """Why a payer denied a request (coded, as payers' remittance codes group them)."""

    NOT_MEDICALLY_NECESSARY = "not_medically_necessary"
    INSUFFICIENT_INFORMATION = "insufficient_information"
    LEVEL_NOT_COVERED = "level_not_covered"
    OUT_OF_NETWORK = "out_of_network"
    BENEFIT_EXHAUSTED = "benefit_exhausted"
    ADMINISTRATIVE = "administrative"


class ConcurrentReviewOutcome(StrEnum):
    """What the utilization reviewer's concurrent review concluded."""

    EXTENSION_REQUESTED = "extension_requested"  # the stay goes on: more days are asked of the payer
    CONTINUE_AS_AUTHORIZED = "continue_as_authorized"  # the authorization covers what is planned
    STEP_DOWN_PLANNED = "step_down_planned"
    DISCHARGE_PLANNED = "discharge_planned"


DECIDED = {
    AuthorizationDecision.APPROVED: AuthorizationStatus.APPROVED,
    AuthorizationDecision.PARTIALLY_APPROVED: AuthorizationStatus.PARTIALLY_APPROVED,
    AuthorizationDecision.DENIED: AuthorizationStatus.DENIED,
}


@dataclass(frozen=True)
class ConcurrentReview:
    """A concurrent review the clock requested of the utilization reviewer, due by `due_at` (the end)."""

    requested_at: datetime
    due_at: datetime
    escalated: bool = False


@dataclass(frozen=True)
class Authorization:
    """One request to a payer for a level, and what the payer decided (its period, once approved)."""

    authorization_id: str
    payer: str
    level: LevelOfCare
    unit: AuthorizationUnit
    requested_units: int
    requested_at: datetime
    requested_by: str
    status: AuthorizationStatus = AuthorizationStatus.REQUESTED
    authorization_number: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    approved_units: int | None = None
    denial_reason: DenialReason | None = None
    decided_at: datetime | None = None
    extensions: int = 0
    concurrent_review: ConcurrentReview | None = None  # requested and not yet recorded
    reviewed_for_end: datetime | None = None  # the end a concurrent review was recorded for (a new end wants another)

    @property
    def approved(self) -> bool:
        return self.status in (AuthorizationStatus.APPROVED, AuthorizationStatus.PARTIALLY_APPROVED)

    def current_at(self, at: datetime) -> bool:
        """Whether it authorizes its level at `at`: approved, and `at` within [start, end)."""
        return self.approved and self.start is not None and self.end is not None and self.start <= at < self.end


@dataclass(frozen=True)
class UtilizationReviewPolicy:
    review_days_before_end: float  # a concurrent review falls due this many care-clock days before the end
    escalate_after_days: float  # days past its due date (the end) before the clinical director is alerted


_KEYS = {"concurrent_review_days_before_end", "escalate_after_days"}


def read_utilization_review(raw: dict[str, Any]) -> UtilizationReviewPolicy | None:
    """The `[utilization_review]` table of a parsed policy, validated, errors naming the key; None if it has none
    (a policy from before authorizations: the episode records none)."""
    if "utilization_review" not in raw:
        return None
    table = raw["utilization_review"]
    if not isinstance(table, dict):
        raise PolicyError("policy key utilization_review must be a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise PolicyError(f"policy key utilization_review.{unknown[0]} is not a key of [utilization_review]")
    before = _days(table, "concurrent_review_days_before_end")
    if before <= 0:
        raise PolicyError(
            f"policy key utilization_review.concurrent_review_days_before_end must be a positive number of days,"
            f" not {before!r}"
        )
    return UtilizationReviewPolicy(before, _days(table, "escalate_after_days"))


def _days(table: dict[str, Any], name: str) -> float:
    value = table.get(name)
    key = f"utilization_review.{name}"
    if value is None:
        raise PolicyError(f"policy key {key} is missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise PolicyError(f"policy key {key} must be a non-negative number of days, not {value!r}")
    return float(value)
