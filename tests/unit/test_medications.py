"""Issue 14, finding 4: medications, not substance names; the catalogue says what a test may and must show."""

from __future__ import annotations

from random import Random

import pytest
from scenario import POLICY, Scenario

from continuum.domain.commands import ChangeMedications, DrawTestSchedule
from continuum.domain.errors import CommandInvalid, PolicyError
from continuum.domain.events import FlagRaised, LevelChanged
from continuum.domain.flags import Flag, FlagFamily
from continuum.domain.levels import LevelOfCare as L
from continuum.domain.policy import default_policy_text, load_policy
from continuum.domain.testing import TestResult, draw_schedule

BUPRENORPHINE_ABSENT = Flag(FlagFamily.BUPRENORPHINE_ABSENT)


def iop_on(*medications: str, policy_text: str | None = None) -> Scenario:
    policy = load_policy(policy_text) if policy_text else POLICY
    t = Scenario.opened((1, 1, 1, 1, 1, 1), medications=medications, policy=policy)
    t.do(DrawTestSchedule(draw_schedule(Random(1), L.INTENSIVE_OUTPATIENT, t.at, policy.drug_testing)))
    return t


def test_suboxone_shows_buprenorphine_which_is_expected_and_keeps_the_sober_date() -> None:
    t = iop_on("buprenorphine-naloxone")
    sober = t.state.sobriety_since
    events = t.result(t.order(), TestResult.POSITIVE, "buprenorphine", "norbuprenorphine", "naloxone")
    assert [type(e).__name__ for e in events] == ["TestResultRecorded"]
    assert t.state.level is L.INTENSIVE_OUTPATIENT and t.state.sobriety_since == sober


def test_a_negative_while_on_suboxone_raises_the_absent_medication_flag() -> None:
    t = iop_on("buprenorphine-naloxone")
    t.result(t.order(), TestResult.NEGATIVE)
    assert BUPRENORPHINE_ABSENT in t.state.flags


def test_methadone_shows_eddp_and_an_absent_methadone_is_flagged_by_its_analyte() -> None:
    t = iop_on("methadone")
    assert [type(e).__name__ for e in t.result(t.order(), TestResult.POSITIVE, "eddp")] == [
        "TestResultRecorded",
        "FlagRaised",
    ]
    flag = Flag(FlagFamily.ANALYTE_ABSENT, "methadone")
    assert flag in t.state.flags and str(flag) == "analyte_absent:methadone"


def test_naltrexone_shows_nothing_that_must_be_there_and_fentanyl_still_counts() -> None:
    t = iop_on("naltrexone")
    events = t.result(t.order(), TestResult.POSITIVE, "6-beta-naltrexol", "fentanyl")
    assert not any(isinstance(e, FlagRaised) for e in events)
    assert isinstance(events[-1], LevelChanged) and "fentanyl, not prescribed" in events[-1].cause


def test_a_medication_outside_the_catalogue_is_refused_naming_the_catalogue() -> None:
    t = iop_on()
    with pytest.raises(CommandInvalid, match="suboxone-marker: not in the program's medication catalogue") as refused:
        t.do(ChangeMedications(("Suboxone-marker",), "clin-1"))
    assert "buprenorphine-naloxone" in str(refused.value) and "methadone" in str(refused.value)


def test_a_program_extends_the_catalogue_in_its_policy_file() -> None:
    text = default_policy_text().replace(
        "\n[medications]\n", '\n[medications]\nketamine = { shows = ["ketamine", "norketamine"], must_show = [] }\n'
    )
    t = iop_on("ketamine", policy_text=text)
    assert [type(e).__name__ for e in t.result(t.order(), TestResult.POSITIVE, "norketamine")] == ["TestResultRecorded"]


def test_a_catalogue_entry_must_show_only_what_it_shows() -> None:
    text = default_policy_text().replace(
        'methadone = { shows = ["methadone", "eddp"], must_show = ["methadone"] }',
        'methadone = { shows = ["eddp"], must_show = ["methadone"] }',
    )
    with pytest.raises(PolicyError, match="medications.methadone.must_show"):
        load_policy(text)


def test_a_policy_from_before_the_catalogue_reads_prescriptions_as_substance_names() -> None:
    """Old episodes carry their policy text, without [medications]: their results read as they were recorded."""
    text = default_policy_text()
    start, end = text.index("\n[medications]\n"), text.index("\n[drug_testing]\n")
    t = iop_on("buprenorphine-naloxone", policy_text=text[:start] + text[end:])
    events = t.result(t.order(), TestResult.POSITIVE, "buprenorphine")
    assert isinstance(events[-1], LevelChanged)  # as recorded then: not a prescribed substance name
