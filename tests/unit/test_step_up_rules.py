"""Step-ups that a clinician reviews, and results corrected after a step-up: pure domain, no I/O.

Flags are compared as the strings the log stores ("step_up_review_overdue", ...), which recorded events
keep whatever type the code gives them.
"""

from __future__ import annotations

import pytest

from continuum.domain.commands import DecideStepUp, EscalateStepUpReview, ReverseStepUp
from continuum.domain.errors import CommandRejected
from continuum.domain.events import (
    FlagRaised,
    LevelChanged,
    StepUpCancelled,
    StepUpPending,
    StepUpReviewDecided,
    TestResultCorrected,
)
from continuum.domain.fold import fold
from continuum.domain.levels import LevelOfCare
from continuum.domain.testing import TestMethod, TestResult
from tests.unit.scenario import DAY, Scenario, policy_with

L = LevelOfCare
MILD = (1, 1, 1, 1, 1, 1)  # intensive outpatient, which steps up to residential
REVIEW = policy_with('positive_result_action = "automatic"', 'positive_result_action = "review"')


def positive_under_review() -> tuple[Scenario, str]:
    """An IOP episode whose positive result waits for a clinician's step-up review."""
    t = Scenario.opened(MILD, policy=REVIEW)
    test_id = t.order()
    *_, pending = t.result(test_id, TestResult.POSITIVE, "fentanyl")
    assert isinstance(pending, StepUpPending) and pending.waiting_for == "review"
    assert pending.due_at == t.at + DAY * REVIEW.drug_testing.step_up_review_due_days
    return t, test_id


def raised(t: Scenario, flag: str) -> list[FlagRaised]:
    return [e for e in t.recorded if isinstance(e, FlagRaised) and str(e.flag) == flag]


def test_an_overdue_step_up_review_is_escalated_once_by_the_clock_and_the_decision_clears_it() -> None:
    t, test_id = positive_under_review()
    pending = t.state.pending_step_up
    assert pending is not None and pending.due_at is not None
    with pytest.raises(CommandRejected, match=f"no overdue step-up review for test {test_id}"):
        t.do(EscalateStepUpReview(test_id))  # not due yet

    t.advance(pending.due_at)
    escalations = raised(t, "step_up_review_overdue")
    assert len(escalations) == 1 and escalations[0].occurred_at == pending.due_at
    assert f"test {test_id} is overdue" in escalations[0].reason
    assert "step_up_review_overdue" in t.flags() and t.state.level is L.INTENSIVE_OUTPATIENT  # nothing moved
    with pytest.raises(CommandRejected, match="already escalated"):
        t.do(EscalateStepUpReview(test_id))
    t.advance(pending.due_at + DAY * 2)  # the clock does not escalate it again
    assert [
        e for e in t.recorded if isinstance(e, FlagRaised) and str(e.flag) == "step_up_review_overdue"
    ] == escalations

    t.do(DecideStepUp(test_id, True, "clin-2", "seen at last"))
    assert "step_up_review_overdue" not in t.flags() and t.state.level is L.RESIDENTIAL
    assert fold(t.recorded) == t.state


def test_a_declined_step_up_review_keeps_the_level_and_is_on_record() -> None:
    t, test_id = positive_under_review()
    events = t.do(DecideStepUp(test_id, False, "clin-2", "relapse managed at this level"), after_days=1)

    assert len(events) == 1 and isinstance(events[0], StepUpReviewDecided)
    assert (events[0].confirmed, events[0].clinician, events[0].note) == (
        False,
        "clin-2",
        "relapse managed at this level",
    )
    assert t.state.level is L.INTENSIVE_OUTPATIENT and t.state.pending_step_up is None
    assert t.state.last_step_up is None and t.state.sobriety_since is not None  # the positive still counted
    with pytest.raises(CommandRejected, match=f"no step-up review is pending for test {test_id}"):
        t.do(DecideStepUp(test_id, True, "clin-2"))  # decided once
    with pytest.raises(CommandRejected, match=f"no step-up caused by test {test_id} can be reversed now"):
        t.do(ReverseStepUp(test_id, "clin-2", "nothing to reverse"))
    t.advance(t.at + DAY * REVIEW.drug_testing.step_up_review_due_days * 2)  # past the review's due date
    assert "step_up_review_overdue" not in t.flags()  # a decided review is never escalated


def test_a_result_corrected_to_negative_after_a_step_up_flags_the_step_up_and_moves_nothing() -> None:
    t = Scenario.opened(MILD)
    test_id = t.order()
    *_, moved = t.result(test_id, TestResult.POSITIVE, "cocaine", ref="lab-1")
    assert isinstance(moved, LevelChanged) and t.state.level is L.RESIDENTIAL

    t.wait(2)
    events = t.result(test_id, TestResult.NEGATIVE, ref="lab-2", corrects="lab-1")

    assert [type(e).__name__ for e in events] == ["TestResultCorrected", "FlagRaised"]
    corrected, flagged = events
    assert isinstance(corrected, TestResultCorrected) and corrected.corrects_lab_reference == "lab-1"
    assert isinstance(flagged, FlagRaised) and str(flagged.flag) == "step_up_on_corrected_result"
    assert test_id in flagged.reason
    assert t.state.level is L.RESIDENTIAL  # a clinician decides whether to reverse it
    test = t.state.test(test_id)
    assert test is not None and test.confirmed is not None and test.confirmed.lab_reference == "lab-2"
    t.do(ReverseStepUp(test_id, "clin-2", "the corrected result is negative"))
    assert t.state.level is L.INTENSIVE_OUTPATIENT and fold(t.recorded) == t.state


def test_a_presumptive_positive_corrected_to_negative_cancels_the_step_up_it_awaited() -> None:
    t = Scenario.opened(MILD)
    test_id = t.order()
    t.result(test_id, TestResult.POSITIVE, "cocaine", method=TestMethod.PRESUMPTIVE, ref="poc-1")
    assert t.state.pending_step_up is not None and t.state.pending_step_up.waiting_for == "confirmation"

    events = t.result(test_id, TestResult.NEGATIVE, method=TestMethod.PRESUMPTIVE, ref="poc-2", corrects="poc-1")

    assert [type(e).__name__ for e in events] == ["TestResultCorrected", "StepUpCancelled"]
    assert isinstance(events[1], StepUpCancelled) and "corrected" in events[1].reason
    assert t.state.pending_step_up is None and t.state.level is L.INTENSIVE_OUTPATIENT
