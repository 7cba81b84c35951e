"""Flags on an episode: a family (what the clinical director should see) and, for some, a subject (a test, a
referral); and which families are alerts on the dashboard.

A `Flag` is its stored spelling (`result_missing:<test id>`), so recorded events, the folded state and the
projection's `flags` column keep the values they always had; code reads `flag.family` and `flag.subject`.
"""

from __future__ import annotations

from enum import StrEnum


class FlagFamily(StrEnum):
    REVIEW_OVERDUE = "review_overdue"
    STEP_UP_REVIEW_OVERDUE = "step_up_review_overdue"
    STEP_UP_ON_CORRECTED_RESULT = "step_up_on_corrected_result"
    BUPRENORPHINE_ABSENT = "buprenorphine_absent"  # the older spelling of ANALYTE_ABSENT for buprenorphine
    ANALYTE_ABSENT = "analyte_absent"  # subject: an analyte the client's medication must show (possible diversion)
    SPECIMEN_TEMPERATURE = "specimen_temperature_out_of_range"
    RESULT_MISSING = "result_missing"  # subject: the test
    LAB_NOT_NOTIFIED = "lab_not_notified"  # subject: the test
    REFERRAL_UNANSWERED = "referral_unanswered"  # subject: the referral
    REFERRAL_NOT_SENT = "referral_not_sent"  # subject: the referral; the partner's endpoint never took it
    BELOW_MINIMUM_HOURS = "below_minimum_hours"  # subject: the care week (`week-3`) that delivered too little
    RE_ENGAGEMENT_REVIEW = "re_engagement_review"  # misses or low attendance: the clinician reviews, never a discharge
    RE_ENGAGEMENT_REVIEW_OVERDUE = "re_engagement_review_overdue"  # not done by its due date: the director is alerted
    POSSIBLE_DROPOUT = "possible_dropout"  # no session attended for the policy's number of days
    PLAN_OVERDUE = "plan_overdue"  # the initial treatment plan or its review was not done by its due date
    # Utilization review: the clinical level against the authorized one (domain.authorization_decisions)
    AUTHORIZATION_EXPIRED = "authorization_expired"  # subject: the authorization the stay ran past the end of
    LEVEL_UNAUTHORIZED = "level_unauthorized"  # no current authorization at all for the clinical level
    AUTHORIZED_LEVEL_MISMATCH = "authorized_level_mismatch"  # a current authorization, for another level
    CONCURRENT_REVIEW_OVERDUE = "concurrent_review_overdue"  # subject: the authorization; not reviewed by its end


SEPARATOR = ":"


class Flag(str):
    """One flag: `Flag(FlagFamily.RESULT_MISSING, test_id)`; equal to (and stored as) its spelling."""

    family: FlagFamily
    subject: str | None

    def __new__(cls, family: FlagFamily, subject: str | None = None) -> Flag:
        flag = super().__new__(cls, family.value if subject is None else f"{family.value}{SEPARATOR}{subject}")
        flag.family = family
        flag.subject = subject
        return flag

    def __getnewargs__(self) -> tuple[FlagFamily, str | None]:  # type: ignore[override]
        return (self.family, self.subject)

    def __repr__(self) -> str:
        return f"Flag({self.family!s}, {self.subject!r})"

    @classmethod
    def parse(cls, spelling: str) -> Flag:
        """The flag a stored spelling names (ValueError for a family that is not ours)."""
        if isinstance(spelling, Flag):
            return spelling
        family, separator, subject = spelling.partition(SEPARATOR)
        return cls(FlagFamily(family), subject if separator else None)


class Alert(StrEnum):
    """The dashboard's alert lists that open flags feed (the others come from recorded events)."""

    OVERDUE_REVIEWS = "overdue_reviews"
    MISSING_RESULTS = "missing_results"
    UNANSWERED_REFERRALS = "unanswered_referrals"
    OVERDUE_PLANS = "overdue_plans"
    BEYOND_AUTHORIZATION = "stays_beyond_authorization"
    UNAUTHORIZED_LEVELS = "unauthorized_levels"  # a level without a current authorization, or another authorized
    OVERDUE_CONCURRENT_REVIEWS = "overdue_concurrent_reviews"


ALERT_OF: dict[FlagFamily, Alert] = {
    FlagFamily.REVIEW_OVERDUE: Alert.OVERDUE_REVIEWS,
    FlagFamily.RESULT_MISSING: Alert.MISSING_RESULTS,
    FlagFamily.REFERRAL_UNANSWERED: Alert.UNANSWERED_REFERRALS,
    FlagFamily.PLAN_OVERDUE: Alert.OVERDUE_PLANS,
    FlagFamily.AUTHORIZATION_EXPIRED: Alert.BEYOND_AUTHORIZATION,
    FlagFamily.LEVEL_UNAUTHORIZED: Alert.UNAUTHORIZED_LEVELS,
    FlagFamily.AUTHORIZED_LEVEL_MISMATCH: Alert.UNAUTHORIZED_LEVELS,
    FlagFamily.CONCURRENT_REVIEW_OVERDUE: Alert.OVERDUE_CONCURRENT_REVIEWS,
}
# What a flag's subject is, by family: the key a reader shows it under.
SUBJECT_OF: dict[FlagFamily, str] = {
    FlagFamily.ANALYTE_ABSENT: "analyte",
    FlagFamily.RESULT_MISSING: "test_id",
    FlagFamily.LAB_NOT_NOTIFIED: "test_id",
    FlagFamily.REFERRAL_UNANSWERED: "referral_id",
    FlagFamily.REFERRAL_NOT_SENT: "referral_id",
    FlagFamily.BELOW_MINIMUM_HOURS: "week",
    FlagFamily.AUTHORIZATION_EXPIRED: "authorization_id",
    FlagFamily.CONCURRENT_REVIEW_OVERDUE: "authorization_id",
}


def analyte_absent(analyte: str) -> Flag:
    """The flag for an expected analyte a specimen did not show; buprenorphine keeps the spelling it always had."""
    if analyte == "buprenorphine":
        return Flag(FlagFamily.BUPRENORPHINE_ABSENT)
    return Flag(FlagFamily.ANALYTE_ABSENT, analyte)
