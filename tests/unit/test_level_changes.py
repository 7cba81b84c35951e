"""Issue 14, finding 2: an override is for the placement; later a step down needs the review or the director."""

from __future__ import annotations

import pytest
from scenario import WITHOUT_TESTING, WITHOUT_TESTING_TEXT, Scenario

from continuum.domain.commands import OverridePlacement
from continuum.domain.episode import OverrideReason
from continuum.domain.errors import CommandRejected
from continuum.domain.events import LevelChanged, LevelChangeDecided, PlacementOverridden
from continuum.domain.levels import LevelOfCare as L
from continuum.domain.policy import load_policy

MILD = (1, 1, 1, 1, 1, 1)  # placed in IOP (the baseline)
UNSTABLE_HOME = (0, 0, 1, 0, 0, 3)  # placed in residential


def iop() -> Scenario:
    return Scenario.opened(MILD, policy=WITHOUT_TESTING)


def test_an_override_at_the_start_of_treatment_places_the_client_elsewhere() -> None:
    t = iop()
    events = t.do(OverridePlacement(L.OUTPATIENT, OverrideReason.CLIENT_PREFERENCE, "", "clin-2"), after_days=0.5)
    assert [type(e) for e in events] == [PlacementOverridden, LevelChanged] and t.state.level is L.OUTPATIENT
    # a second thought in the same first day is still the placement's
    t.do(OverridePlacement(L.PARTIAL_HOSPITALIZATION, OverrideReason.PAYER_DENIAL, "", "clin-2"), after_days=0.2)
    assert t.state.level is L.PARTIAL_HOSPITALIZATION


def test_two_days_into_iop_an_override_cannot_step_the_client_down_without_a_review() -> None:
    t = iop()
    with pytest.raises(CommandRejected, match="needs the completion review") as refused:
        t.do(OverridePlacement(L.OUTPATIENT, OverrideReason.CLINICAL_JUDGMENT, "", "clin-2"), after_days=2)
    assert "from intensive_outpatient to outpatient" in str(refused.value) and "payer_denial" in str(refused.value)
    assert t.state.level is L.INTENSIVE_OUTPATIENT


def test_after_any_other_move_the_placement_can_no_longer_be_overridden_down() -> None:
    t = iop()
    t.do(OverridePlacement(L.RESIDENTIAL, OverrideReason.CLINICAL_JUDGMENT, "", "clin-2"), after_days=2)  # up
    with pytest.raises(CommandRejected, match="needs the completion review"):
        t.do(OverridePlacement(L.INTENSIVE_OUTPATIENT, OverrideReason.CLINICAL_JUDGMENT, "", "clin-2"))


def test_a_directors_step_down_is_recorded_as_such_with_a_coded_reason() -> None:
    t = iop()
    command = OverridePlacement(L.OUTPATIENT, OverrideReason.PAYER_DENIAL, "auth ended", "clin-2", director="dir-1")
    decided, moved = t.do(command, after_days=2)
    assert isinstance(decided, LevelChangeDecided) and decided.director == "dir-1"
    assert decided.reason is OverrideReason.PAYER_DENIAL and decided.from_level is L.INTENSIVE_OUTPATIENT
    assert isinstance(moved, LevelChanged) and "clinical director's decision (dir-1, payer_denial)" in moved.cause
    assert t.state.level is L.OUTPATIENT


def test_a_directors_step_down_gives_a_reason_from_the_policys_list() -> None:
    t = iop()
    command = OverridePlacement(L.OUTPATIENT, OverrideReason.CLINICAL_JUDGMENT, "", "clin-2", director="dir-1")
    with pytest.raises(CommandRejected, match="a reason among client_preference, court_order, payer_denial"):
        t.do(command, after_days=2)


def test_a_move_up_may_always_be_made_with_a_reason() -> None:
    t = iop()
    decided, moved = t.do(OverridePlacement(L.RESIDENTIAL, OverrideReason.COURT_ORDER, "", "clin-2"), after_days=20)
    assert isinstance(decided, LevelChangeDecided) and decided.director is None
    assert isinstance(moved, LevelChanged) and moved.direction == "up" and t.state.level is L.RESIDENTIAL


def test_the_completion_review_still_steps_the_client_down() -> None:
    t = Scenario.opened(UNSTABLE_HOME, policy=WITHOUT_TESTING)
    t.step_down()
    assert t.state.level is L.INTENSIVE_OUTPATIENT


def test_a_policy_from_before_the_rule_keeps_accepting_an_override_at_any_time() -> None:
    """Old episodes carry their policy text, without [level_changes]: they replay as they were recorded."""
    old_text = (
        WITHOUT_TESTING_TEXT.split("\n[level_changes]")[0]
        + "\n[aftercare]"
        + WITHOUT_TESTING_TEXT.split("\n[aftercare]")[1]
    )
    old = load_policy(old_text)
    assert old.level_changes is None
    t = Scenario.opened(MILD, policy=old)
    events = t.do(OverridePlacement(L.OUTPATIENT, OverrideReason.CLINICAL_JUDGMENT, "", "clin-2"), after_days=2)
    assert [type(e) for e in events] == [PlacementOverridden, LevelChanged]
