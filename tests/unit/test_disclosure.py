"""A disclosure needs a basis (42 CFR Part 2): an export's basis, and what a partner may still read."""

from __future__ import annotations

import pytest

from continuum.domain.commands import Discharge, RecordConsent, RevokeConsent
from continuum.domain.disclosure import (
    DisclosureBasis,
    ExportAsked,
    ExportBasis,
    MedicalEmergency,
    export_basis,
    still_disclosed_to,
)
from continuum.domain.episode import DischargeReason
from continuum.domain.errors import DisclosureRefused
from tests.unit.scenario import DAY, T0, WITHOUT_TESTING, Scenario

MILD = (1, 1, 1, 1, 1, 1)


def consented() -> Scenario:
    t = Scenario.opened(MILD, policy=WITHOUT_TESTING)
    t.do(RecordConsent("c-1", "oak-street", "continuing_care", T0 + DAY * 400, "clin-1"))
    return t


def refused(t: Scenario, asked: ExportAsked) -> DisclosureRefused:
    with pytest.raises(DisclosureRefused) as error:
        export_basis(t.state, asked, t.at)
    return error.value


def test_an_export_outside_the_program_without_consent_or_basis_is_refused_naming_the_basis() -> None:
    t = consented()
    error = refused(t, ExportAsked("oak-street", "research"))
    assert error.parameter == "basis" and "needs a consent valid now" in str(error)
    assert "medical_emergency" in str(error) and "court_order" in str(error)


def test_an_export_under_a_consent_valid_now_for_that_recipient_and_purpose_names_it() -> None:
    t = consented()
    assert export_basis(t.state, ExportAsked("oak-street", "continuing_care"), t.at) == ExportBasis(
        DisclosureBasis.CONSENT, "c-1"
    )
    asked = ExportAsked("oak-street", "continuing_care", DisclosureBasis.CONSENT, "c-1")
    assert export_basis(t.state, asked, t.at).consent_id == "c-1"
    assert refused(t, ExportAsked("harbor-house", "continuing_care", DisclosureBasis.CONSENT, "c-1")).parameter == (
        "consent_id"
    )
    assert refused(t, ExportAsked("oak-street", "x", DisclosureBasis.CONSENT, "c-9")).parameter == "consent_id"


def test_a_revoked_consent_is_no_basis_also_after_the_episode_closed() -> None:
    t = consented()
    t.do(Discharge(DischargeReason.COMPLETED), after_days=2)
    t.do(RevokeConsent("c-1", "clin-1"), after_days=2)
    assert refused(t, ExportAsked("oak-street", "continuing_care")).parameter == "basis"
    error = refused(t, ExportAsked("oak-street", "continuing_care", DisclosureBasis.CONSENT, "c-1"))
    assert error.parameter == "consent_id" and "revoked" in str(error)


def test_a_medical_emergency_records_the_clinician_the_facility_and_the_nature() -> None:
    t = consented()
    emergency = MedicalEmergency("dr-lee", "st-mary-ed", "overdose, unresponsive")
    asked = ExportAsked("st-mary-ed", "treatment", DisclosureBasis.MEDICAL_EMERGENCY, emergency=emergency)
    assert export_basis(t.state, asked, t.at) == ExportBasis(DisclosureBasis.MEDICAL_EMERGENCY, emergency=emergency)
    missing = MedicalEmergency("dr-lee", "", "overdose")
    error = refused(t, ExportAsked("st-mary-ed", "treatment", DisclosureBasis.MEDICAL_EMERGENCY, emergency=missing))
    assert error.parameter == "emergency_facility"
    assert refused(t, ExportAsked("st-mary-ed", "t", DisclosureBasis.MEDICAL_EMERGENCY)).parameter == (
        "emergency_clinician"
    )


def test_a_court_order_is_named_audit_needs_nothing_more_and_staff_are_the_programs_own() -> None:
    t = consented()
    assert refused(t, ExportAsked("county-court", "legal", DisclosureBasis.COURT_ORDER)).parameter == "court_order"
    ordered = ExportAsked("county-court", "legal", DisclosureBasis.COURT_ORDER, court_order="2026-CV-118")
    assert export_basis(t.state, ordered, t.at).court_order == "2026-CV-118"
    audit = ExportAsked("state-auditor", "audit", DisclosureBasis.AUDIT_AND_EVALUATION)
    assert export_basis(t.state, audit, t.at).basis is DisclosureBasis.AUDIT_AND_EVALUATION
    assert export_basis(t.state, ExportAsked("internal_audit", "audit"), t.at).basis is DisclosureBasis.PROGRAM_STAFF
    assert refused(t, ExportAsked("oak-street", "audit", DisclosureBasis.PROGRAM_STAFF)).parameter == "basis"


def test_a_partner_reads_what_it_was_sent_only_while_a_consent_to_it_holds() -> None:
    t = consented()
    assert still_disclosed_to(t.state.consents, "oak-street", t.at)
    assert not still_disclosed_to(t.state.consents, "harbor-house", t.at)
    t.do(Discharge(DischargeReason.COMPLETED), after_days=2)
    t.do(RevokeConsent("c-1", "clin-1"), after_days=2)
    assert not still_disclosed_to(t.state.consents, "oak-street", t.at)
