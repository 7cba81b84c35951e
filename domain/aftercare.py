"""Aftercare: referrals to the resources that fit a client, the consents that let them be disclosed
(42 CFR Part 2), and the follow-ups after leaving intensive care and during aftercare.

Values only; the directory is in `domain.directory`, the decisions in `domain.aftercare_decisions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ResourceType(StrEnum):
    TWELVE_STEP = "twelve_step"
    SMART_RECOVERY = "smart_recovery"
    SOBER_LIVING = "sober_living"
    ALUMNI = "alumni"
    OUTPATIENT_THERAPY = "outpatient_therapy"
    MAT_CONTINUATION = "mat_continuation"
    FAMILY_PROGRAMME = "family_programme"


class ReferralStatus(StrEnum):
    AWAITING_CONSENT = "awaiting_consent"  # it would disclose to a partner, and no consent is on file
    ISSUED = "issued"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    COMPLETED = "completed"


# issued -> accepted / declined -> completed (domain.md); a partner answers only what it was sent.
REFERRAL_TRANSITIONS: dict[ReferralStatus, frozenset[ReferralStatus]] = {
    ReferralStatus.ISSUED: frozenset({ReferralStatus.ACCEPTED, ReferralStatus.DECLINED}),
    ReferralStatus.ACCEPTED: frozenset({ReferralStatus.COMPLETED}),
}
ANSWERS = frozenset({ReferralStatus.ACCEPTED, ReferralStatus.DECLINED, ReferralStatus.COMPLETED})


@dataclass(frozen=True)
class Disclosure:
    """What left the program, to whom and why, under which consent: one line of the accounting."""

    recipient: str
    purpose: str
    disclosed: tuple[str, ...]  # the items shared, e.g. ("episode_id", "referral_type")
    consent_id: str


@dataclass(frozen=True)
class Referral:
    referral_id: str
    resource_id: str
    resource_type: ResourceType
    recipient: str | None  # the partner it is disclosed to; None for a resource that needs no disclosure
    status: ReferralStatus
    created_at: datetime
    issued_at: datetime | None = None
    answer_due_at: datetime | None = None
    alternative_of: str | None = None  # the declined referral this one replaces

    @property
    def open(self) -> bool:
        return self.status in (ReferralStatus.AWAITING_CONSENT, ReferralStatus.ISSUED, ReferralStatus.ACCEPTED)


@dataclass(frozen=True)
class Consent:
    """A client's written consent to disclose to one recipient for one purpose, until it expires or is revoked."""

    consent_id: str
    recipient: str
    purpose: str
    granted_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None

    def valid_at(self, at: datetime) -> bool:
        return self.granted_at <= at < self.expires_at and (self.revoked_at is None or at < self.revoked_at)


class FollowUpKind(StrEnum):
    AFTER_LEAVING = "after_leaving"  # 7 and 30 days after leaving residential or withdrawal management (HEDIS)
    AFTERCARE = "aftercare"  # 30, 60, 90 days of aftercare, then quarterly


class FollowUpOutcome(StrEnum):
    ABSTINENT = "abstinent"
    USING = "using"
    NOT_REACHED = "not_reached"


@dataclass(frozen=True)
class FollowUp:
    follow_up_id: str
    kind: FollowUpKind
    due_at: datetime
    requested_at: datetime | None = None
    outcome: FollowUpOutcome | None = None
    recorded_at: datetime | None = None


@dataclass(frozen=True)
class PlannedFollowUp:
    follow_up_id: str
    kind: FollowUpKind
    due_at: datetime
