"""The command catalogue and the rules the API and the workflow share: who may answer, what is disclosed."""

from __future__ import annotations

import typing
from datetime import UTC, datetime, timedelta

import pytest

from continuum.domain.aftercare import Disclosure, Referral, ReferralStatus, ResourceType
from continuum.domain.answering import lab_may_report, open_tests, partner_may_answer
from continuum.domain.commands import COMMAND_NAMES, COMMANDS, Command, MarkResultOverdue, OpenEpisode, command_name
from continuum.domain.disclosure import disclosed_values
from continuum.domain.episode import Episode, EpisodeStatus
from continuum.domain.errors import InvalidIdentifier
from continuum.domain.events import ReferralIssued
from continuum.domain.ids import ID_PATTERN, consent_id, staff_id
from continuum.domain.levels import LevelOfCare
from continuum.domain.testing import DrugTest, OrderReason, ResultReport, TestResult

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
# The update names running episodes and recorded histories know: never renamed.
WIRE_NAMES = {
    "open",
    "record_assessment",
    "override_placement",
    "record_review_outcome",
    "put_on_hold",
    "resume",
    "discharge",
    "order_test",
    "record_specimen_collection",
    "record_test_result",
    "cancel_test",
    "change_medications",
    "decide_step_up",
    "reverse_step_up",
    "record_consent",
    "revoke_consent",
    "update_referral",
    "record_follow_up_outcome",
    "schedule_session",
    "record_attendance",
    "record_missed_session",
    "cancel_session",
    "record_re_engagement_review",
    "record_treatment_plan",
    "record_plan_review",
    "transfer",
    "request_authorization",
    "record_authorization_decision",
    "record_concurrent_review",
}


def test_the_catalogue_keeps_every_update_name_and_names_each_command_once() -> None:
    assert set(COMMANDS) == WIRE_NAMES
    assert len(COMMAND_NAMES) == len(COMMANDS)
    assert set(COMMANDS.values()) <= set(typing.get_args(Command))
    assert command_name(OpenEpisode("E1", "client-1")) == "open"


def test_a_command_only_the_clock_issues_has_no_wire_name() -> None:
    assert command_name(MarkResultOverdue("T1")) is None


def _test(test_id: str, lab_id: str | None, reported: bool = False, cancelled: bool = False) -> DrugTest:
    report = ResultReport(TestResult.NEGATIVE, (), None, None, "ref-1", False) if reported else None
    return DrugTest(
        test_id,
        OrderReason.CLINICIAN,
        LevelOfCare.INTENSIVE_OUTPATIENT,
        T0,
        T0 + timedelta(days=2),
        presumptive=report,
        cancelled=cancelled,
        lab_id=lab_id,
    )


def _referral(referral_id: str, recipient: str | None, status: ReferralStatus) -> Referral:
    return Referral(referral_id, "harbor-house", ResourceType.SOBER_LIVING, recipient, status, T0)


def _episode(**fields: typing.Any) -> Episode:
    return Episode("E1", "client-1", EpisodeStatus.ACTIVE, T0, T0, level=LevelOfCare.INTENSIVE_OUTPATIENT, **fields)


def test_open_tests_are_those_neither_cancelled_nor_reported() -> None:
    state = _episode(
        tests=(_test("T1", "lab-1"), _test("T2", "lab-1", reported=True), _test("T3", None, cancelled=True))
    )
    assert [t.test_id for t in open_tests(state)] == ["T1"]


def test_a_lab_reports_only_on_the_tests_it_was_sent() -> None:
    state = _episode(tests=(_test("T1", "lab-1"),))
    assert lab_may_report(state, "lab-1", "T1")
    assert not lab_may_report(state, "lab-2", "T1")
    assert not lab_may_report(state, "lab-1", "T9")
    assert not lab_may_report(None, "lab-1", "T1")


def test_a_partner_answers_only_referrals_disclosed_to_it() -> None:
    state = _episode(
        referrals=(
            _referral("R1", "harbor-house", ReferralStatus.ISSUED),
            _referral("R2", "harbor-house", ReferralStatus.AWAITING_CONSENT),
        )
    )
    assert partner_may_answer(state, "harbor-house", "R1")
    assert not partner_may_answer(state, "other-partner", "R1")
    assert not partner_may_answer(state, "harbor-house", "R2")  # awaiting consent: disclosed to no one yet
    assert not partner_may_answer(state, "harbor-house", "R9")


def test_a_referral_discloses_exactly_the_items_its_disclosure_names() -> None:
    state = _episode(medications=("buprenorphine",))
    disclosure = Disclosure("harbor-house", "aftercare_referral", ("episode_id", "medications"), "c-1")
    issued = ReferralIssued(
        "E1", T0, "R1", "harbor-house", ResourceType.SOBER_LIVING, "harbor-house", disclosure, None, "v1"
    )
    assert disclosed_values(state, issued) == {"episode_id": "E1", "medications": ["buprenorphine"]}
    undisclosed = ReferralIssued("E1", T0, "R2", "aa-meeting", ResourceType.TWELVE_STEP, None, None, None, "v1")
    assert disclosed_values(state, undisclosed) == {}


def test_consent_ids_have_their_own_validator() -> None:
    assert consent_id("consent-1") == "consent-1"
    with pytest.raises(InvalidIdentifier, match="a consent id is"):
        consent_id("no spaces allowed")
    with pytest.raises(InvalidIdentifier, match="a staff id is"):
        staff_id("Dr Jane Doe")
    assert ID_PATTERN.startswith("[A-Za-z0-9]")
