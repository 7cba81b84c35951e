"""What leaves the program and on which basis (42 CFR Part 2): what a referral discloses, whether a partner may
still read what it was sent, and whether an export to a recipient has a lawful basis."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from continuum.domain.aftercare import Consent
from continuum.domain.episode import Episode
from continuum.domain.errors import DisclosureRefused
from continuum.domain.events import ReferralIssued

# Recipients named so are the program's own staff (42 CFR 2.12(c)(3)); every other recipient is outside it.
PROGRAM_RECIPIENT_PREFIXES = ("internal_", "internal-")
TEXT_LIMIT = 200  # a clinician's, facility's or order's name, or the nature of an emergency


class DisclosureBasis(StrEnum):
    """Why a disclosure is lawful: the client's consent, or a basis of 42 CFR Part 2 that needs none."""

    CONSENT = "consent"  # 2.31: a consent on file, valid now, for that recipient and purpose
    MEDICAL_EMERGENCY = "medical_emergency"  # 2.51: to medical personnel, recorded at once
    AUDIT_AND_EVALUATION = "audit_and_evaluation"  # 2.53
    COURT_ORDER = "court_order"  # 2.61-2.67: an order authorizing the disclosure
    PROGRAM_STAFF = "program_staff"  # 2.12(c)(3): the program's own staff who need the record


@dataclass(frozen=True)
class MedicalEmergency:
    """What 42 CFR 2.51(c) asks to be recorded at once (the discloser and the time are the export's own)."""

    clinician: str  # the medical personnel who received the record
    facility: str  # their affiliated facility
    nature: str  # the nature of the emergency


@dataclass(frozen=True)
class ExportAsked:
    """An export as its requester asks for it: to whom, why, and on which basis (None: the default one)."""

    recipient: str
    purpose: str
    basis: DisclosureBasis | None = None
    consent_id: str | None = None
    court_order: str | None = None
    emergency: MedicalEmergency | None = None

    @classmethod
    def of(
        cls,
        recipient: str,
        purpose: str,
        basis: DisclosureBasis | None,
        consent_id: str | None = None,
        court_order: str | None = None,
        emergency_clinician: str | None = None,
        emergency_facility: str | None = None,
        emergency_nature: str | None = None,
    ) -> ExportAsked:
        """The export as a request's parameters give it: the emergency's details count only for one."""
        emergency = None
        if basis is DisclosureBasis.MEDICAL_EMERGENCY:
            emergency = MedicalEmergency(emergency_clinician or "", emergency_facility or "", emergency_nature or "")
        return cls(recipient, purpose, basis, consent_id, court_order, emergency)


@dataclass(frozen=True)
class ExportBasis:
    """The basis an export is made and recorded on, in the accounting of disclosures."""

    basis: DisclosureBasis
    consent_id: str | None = None
    court_order: str | None = None
    emergency: MedicalEmergency | None = None


def within_program(recipient: str) -> bool:
    return recipient.startswith(PROGRAM_RECIPIENT_PREFIXES)


def export_basis(state: Episode, asked: ExportAsked, at: datetime) -> ExportBasis:
    """The basis an export may be made on now, or `DisclosureRefused` naming the parameter to mend.

    Within the program the staff's own need is the basis. Outside it, a consent valid now for that recipient
    and purpose (the one named, or any on file), or a basis from the closed list with what it must record."""
    basis = asked.basis or (DisclosureBasis.CONSENT if asked.consent_id is not None else None)
    basis = basis or (DisclosureBasis.PROGRAM_STAFF if within_program(asked.recipient) else None)
    if basis is None:
        consent = _consent_for(state.consents, asked.recipient, asked.purpose, at)
        if consent is None:
            raise DisclosureRefused(
                "basis",
                f"an export to {asked.recipient} (outside the program) for {asked.purpose} needs a consent valid now"
                f" for that recipient and purpose, or a basis: {', '.join(b.value for b in _WITHOUT_CONSENT)}",
            )
        return ExportBasis(DisclosureBasis.CONSENT, consent.consent_id)
    return _BASES[basis](state, asked, at)


def _by_consent(state: Episode, asked: ExportAsked, at: datetime) -> ExportBasis:
    if asked.consent_id is None:
        consent = _consent_for(state.consents, asked.recipient, asked.purpose, at)
        if consent is None:
            raise DisclosureRefused(
                "basis", f"no consent valid now lets {asked.recipient} receive the record for {asked.purpose}"
            )
        return ExportBasis(DisclosureBasis.CONSENT, consent.consent_id)
    consent = state.consent(asked.consent_id)
    if consent is None:
        raise DisclosureRefused("consent_id", f"no consent {asked.consent_id} is on file")
    if (consent.recipient, consent.purpose) != (asked.recipient, asked.purpose):
        raise DisclosureRefused(
            "consent_id",
            f"consent {consent.consent_id} is for {consent.recipient} and {consent.purpose},"
            f" not {asked.recipient} and {asked.purpose}",
        )
    if not consent.valid_at(at):
        why = "was revoked" if consent.revoked_at is not None and consent.revoked_at <= at else "is not valid now"
        raise DisclosureRefused("consent_id", f"consent {consent.consent_id} {why}; nothing is disclosed under it")
    return ExportBasis(DisclosureBasis.CONSENT, consent.consent_id)


def _in_emergency(state: Episode, asked: ExportAsked, at: datetime) -> ExportBasis:
    emergency = asked.emergency
    if emergency is None:
        raise DisclosureRefused(
            "emergency_clinician", "a medical emergency names the receiving clinician, their facility and its nature"
        )
    for parameter, value in (
        ("emergency_clinician", emergency.clinician),
        ("emergency_facility", emergency.facility),
        ("emergency_nature", emergency.nature),
    ):
        _require_text(parameter, value)
    return ExportBasis(DisclosureBasis.MEDICAL_EMERGENCY, emergency=emergency)


def _for_audit(state: Episode, asked: ExportAsked, at: datetime) -> ExportBasis:
    return ExportBasis(DisclosureBasis.AUDIT_AND_EVALUATION)


def _by_court_order(state: Episode, asked: ExportAsked, at: datetime) -> ExportBasis:
    _require_text("court_order", asked.court_order)
    return ExportBasis(DisclosureBasis.COURT_ORDER, court_order=asked.court_order)


def _to_staff(state: Episode, asked: ExportAsked, at: datetime) -> ExportBasis:
    if not within_program(asked.recipient):
        raise DisclosureRefused(
            "basis",
            f"{asked.recipient} is outside the program: program_staff is for the program's own staff"
            f" (recipients named {' or '.join(p + '…' for p in PROGRAM_RECIPIENT_PREFIXES)})",
        )
    return ExportBasis(DisclosureBasis.PROGRAM_STAFF)


_BASES = {
    DisclosureBasis.CONSENT: _by_consent,
    DisclosureBasis.MEDICAL_EMERGENCY: _in_emergency,
    DisclosureBasis.AUDIT_AND_EVALUATION: _for_audit,
    DisclosureBasis.COURT_ORDER: _by_court_order,
    DisclosureBasis.PROGRAM_STAFF: _to_staff,
}
_WITHOUT_CONSENT = tuple(b for b in DisclosureBasis if b is not DisclosureBasis.CONSENT)


def _require_text(parameter: str, value: str | None) -> None:
    if value is None or not value.strip():
        raise DisclosureRefused(parameter, "is required for this basis")
    if len(value) > TEXT_LIMIT or any(ord(c) < 32 for c in value):
        raise DisclosureRefused(parameter, f"at most {TEXT_LIMIT} characters, no control characters")


def _consent_for(consents: Iterable[Consent], recipient: str, purpose: str | None, at: datetime) -> Consent | None:
    """The newest consent valid at `at` for `recipient` (and `purpose`, unless None)."""
    return next(
        (
            c
            for c in reversed(tuple(consents))
            if c.recipient == recipient and purpose in (None, c.purpose) and c.valid_at(at)
        ),
        None,
    )


def still_disclosed_to(consents: Iterable[Consent], recipient: str, at: datetime) -> bool:
    """Whether what was disclosed to `recipient` may still be read by it at `at`: only while a consent to it
    is valid. Once the client revokes it (42 CFR 2.31, also after the episode closed) or it expires, the
    partner reads nothing more (what it already received stays received)."""
    return _consent_for(consents, recipient, None, at) is not None


def disclosed_values(state: Episode, issued: ReferralIssued) -> dict[str, Any]:
    """The items the referral's partner receives, as sent; empty when nothing is disclosed."""
    if issued.disclosure is None:
        return {}
    values: dict[str, Any] = {
        "episode_id": state.episode_id,
        "referral_type": issued.resource_type.value,
        "level_of_care": state.level.value if state.level else None,
        "medications": list(state.medications),
    }
    return {item: values[item] for item in issued.disclosure.disclosed}
