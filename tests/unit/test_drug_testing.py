"""Random-interval schedules, result interpretation and step-ups: pure domain, no I/O."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from random import Random

import pytest

from continuum.domain.commands import (
    CancelTest,
    DecideStepUp,
    DrawTestSchedule,
    MarkResultOverdue,
    OpenEpisode,
    OrderScheduledTest,
    OrderTest,
    RecordAssessment,
    RecordSpecimenCollection,
    RecordTestResult,
    ReverseStepUp,
)
from continuum.domain.decisions import decide
from continuum.domain.episode import EpisodeStatus
from continuum.domain.errors import CommandRejected
from continuum.domain.events import LevelChanged, StepUpCancelled, StepUpPending, TestOrdered, TestResultCorrected
from continuum.domain.fold import BUPRENORPHINE_ABSENT, fold, result_missing_flag
from continuum.domain.levels import LevelOfCare
from continuum.domain.policy import default_policy_text, load_policy
from continuum.domain.testing import TestMethod, TestResult, draw_schedule, strata
from tests.unit.scenario import DAY, POLICY, T0, Scenario

TESTING = POLICY.drug_testing
L = LevelOfCare


@pytest.mark.parametrize("level", [lv for lv in LevelOfCare if TESTING.per_week.get(lv, 0) > 0])
def test_schedules_over_many_seeds_keep_frequency_and_gaps_and_cover_every_weekday(level: LevelOfCare) -> None:
    per_week = TESTING.per_week[level]
    stratum = TESTING.window_days / len(strata(TESTING.window_days, per_week))
    longest_allowed = 2 * stratum
    weekdays: Counter[int] = Counter()
    for seed in range(300):
        rng = Random(seed)
        previous_end: int | None = None
        for window in range(3):  # consecutive windows: gaps across their border count too
            draw = draw_schedule(rng, level, T0 + DAY * TESTING.window_days * window, TESTING)
            days = [window * TESTING.window_days + d for d in draw.chosen_days]
            assert len(days) == round(TESTING.window_days * per_week / 7)
            assert days == sorted(set(days))
            if previous_end is not None:
                days = [previous_end, *days]
            assert all(0 < b - a < longest_allowed for a, b in zip(days, days[1:], strict=False))
            previous_end = days[-1]
            weekdays.update((T0.weekday() + d) % 7 for d in days)
    assert set(weekdays) == set(range(7))
    if per_week >= 1:
        assert weekdays[0] > weekdays[1]  # Mondays (after the weekend) weigh double


def test_the_same_generator_state_draws_the_same_schedule() -> None:
    first = draw_schedule(Random("episode-1:drug-tests"), L.INTENSIVE_OUTPATIENT, T0, TESTING)
    again = draw_schedule(Random("episode-1:drug-tests"), L.INTENSIVE_OUTPATIENT, T0, TESTING)
    other = draw_schedule(Random("episode-2:drug-tests"), L.INTENSIVE_OUTPATIENT, T0, TESTING)
    assert first == again and first.chosen_days != other.chosen_days
    assert first.eligible_days == tuple(range(28)) and len(first.weights) == 28


def iop_episode(policy_text: str | None = None, medications: tuple[str, ...] = ()) -> Scenario:
    """An episode at IOP with a drawn schedule, ready to order tests and record results."""
    policy = load_policy(policy_text) if policy_text else POLICY
    t = Scenario.opened((1, 1, 1, 1, 1, 1), medications=medications, policy=policy)
    t.do(DrawTestSchedule(draw_schedule(Random(1), L.INTENSIVE_OUTPATIENT, t.at, policy.drug_testing)))
    return t


def test_scheduled_tests_are_ordered_on_the_drawn_days_and_a_missing_result_is_flagged() -> None:
    t = iop_episode()
    assert t.state is not None and len(t.state.planned_tests) == 8
    t.at = t.state.planned_tests[0] - timedelta(minutes=1)
    with pytest.raises(CommandRejected, match="no scheduled test is due"):
        t.do(OrderScheduledTest())
    t.at = t.state.planned_tests[0]
    [ordered] = t.do(OrderScheduledTest())
    assert ordered.reason == "scheduled" and len(t.state.planned_tests) == 7
    with pytest.raises(CommandRejected, match="is not overdue"):
        t.do(MarkResultOverdue(ordered.test_id))
    t.wait(TESTING.result_window_days)
    t.do(MarkResultOverdue(ordered.test_id))
    assert result_missing_flag(ordered.test_id) in t.state.flags
    t.result(ordered.test_id, TestResult.NEGATIVE)  # a late result still counts, and clears the flag
    assert t.state.flags == ()


def test_a_positive_at_iop_steps_up_to_residential_naming_the_test_result_and_rule() -> None:
    t = iop_episode()
    test_id = t.order()
    events = t.result(test_id, TestResult.POSITIVE, "fentanyl")
    assert [type(e).__name__ for e in events] == ["TestResultRecorded", "SobrietyDateReset", "LevelChanged"]
    moved = events[-1]
    assert isinstance(moved, LevelChanged) and moved.to_level is L.RESIDENTIAL and moved.cause_test_id == test_id
    assert "fentanyl, not prescribed" in moved.cause and "step_up.intensive_outpatient -> residential" in moved.cause
    assert t.state is not None and t.state.status is EpisodeStatus.ACTIVE and t.state.sobriety_since == t.at


def test_a_prescribed_mat_substance_does_not_count_and_its_absence_raises_a_flag() -> None:
    t = iop_episode(medications=("Buprenorphine",))
    first = t.order()
    assert [type(e).__name__ for e in t.result(first, TestResult.POSITIVE, "buprenorphine")] == ["TestResultRecorded"]
    assert t.state is not None and t.state.level is L.INTENSIVE_OUTPATIENT
    second = t.order()
    t.result(second, TestResult.NEGATIVE, ref="lab-2")
    assert BUPRENORPHINE_ABSENT in t.state.flags


def test_refused_counts_as_positive_and_steps_up_without_waiting_for_a_lab() -> None:
    t = iop_episode()
    events = t.result(t.order(), TestResult.REFUSED, method=TestMethod.PRESUMPTIVE)
    assert isinstance(events[-1], LevelChanged) and t.state is not None and t.state.level is L.RESIDENTIAL


def test_a_dilute_specimen_orders_a_retest() -> None:
    t = iop_episode()
    test_id = t.order()
    events = t.result(test_id, TestResult.DILUTE, method=TestMethod.PRESUMPTIVE)
    retest = events[-1]
    assert isinstance(retest, TestOrdered) and retest.reason == "retest" and retest.retest_of == test_id
    assert retest.result_due_at == t.at + DAY * TESTING.retest_within_days
    assert t.state is not None and t.state.level is L.INTENSIVE_OUTPATIENT


def test_a_presumptive_positive_then_a_negative_confirmation_leaves_the_level_unchanged() -> None:
    t = iop_episode()
    test_id = t.order()
    [recorded, pending] = t.result(test_id, TestResult.POSITIVE, "cocaine", method=TestMethod.PRESUMPTIVE)
    assert isinstance(pending, StepUpPending) and pending.waiting_for == "confirmation"
    [confirmed, cancelled] = t.result(test_id, TestResult.NEGATIVE, ref="lab-2")
    assert isinstance(cancelled, StepUpCancelled)
    assert t.state is not None and t.state.level is L.INTENSIVE_OUTPATIENT and t.state.pending_step_up is None


def test_a_presumptive_positive_confirmed_positive_steps_up() -> None:
    t = iop_episode()
    test_id = t.order()
    t.result(test_id, TestResult.POSITIVE, "cocaine", method=TestMethod.PRESUMPTIVE)
    events = t.result(test_id, TestResult.POSITIVE, "cocaine", ref="lab-2")
    assert isinstance(events[-1], LevelChanged) and t.state is not None and t.state.level is L.RESIDENTIAL


def test_results_are_idempotent_conflicts_are_refused_and_corrections_supersede() -> None:
    t = iop_episode()
    test_id = t.order()
    t.result(test_id, TestResult.NEGATIVE, ref="lab-1")
    assert t.result(test_id, TestResult.NEGATIVE, ref="lab-1") == []
    with pytest.raises(
        CommandRejected, match="already has a confirmed result \\(negative, lab-1\\); send a correction"
    ):
        t.result(test_id, TestResult.POSITIVE, "heroin", ref="lab-9")
    with pytest.raises(CommandRejected, match="no test ep-1.T9 was ordered"):
        t.result("ep-1.T9", TestResult.NEGATIVE)
    with pytest.raises(CommandRejected, match="no result lab-7 to correct"):
        t.result(test_id, TestResult.POSITIVE, "heroin", ref="lab-2", corrects="lab-7")
    events = t.result(test_id, TestResult.POSITIVE, "heroin", ref="lab-2", corrects="lab-1")
    assert isinstance(events[0], TestResultCorrected) and events[0].corrects_lab_reference == "lab-1"
    assert isinstance(events[-1], LevelChanged)  # the corrected result counts, so it acts
    assert t.state is not None and t.state.test(test_id).confirmed.lab_reference == "lab-2"  # type: ignore[union-attr]


def test_in_review_mode_a_clinician_confirms_the_step_up_and_can_reverse_it() -> None:
    review_policy = default_policy_text().replace(
        'positive_result_action = "automatic"', 'positive_result_action = "review"'
    )
    t = iop_episode(review_policy)
    test_id = t.order()
    events = t.result(test_id, TestResult.POSITIVE, "methamphetamine")
    assert isinstance(events[-1], StepUpPending) and events[-1].waiting_for == "review"
    with pytest.raises(CommandRejected, match="no step-up review is pending for test other"):
        t.do(DecideStepUp("other", True, "clin-2"))
    t.do(DecideStepUp(test_id, True, "clin-2", "agreed at team meeting"))
    assert t.state is not None and t.state.level is L.RESIDENTIAL
    with pytest.raises(CommandRejected, match="needs a reason"):
        t.do(ReverseStepUp(test_id, "clin-3", " "))
    t.do(ReverseStepUp(test_id, "clin-3", "the lab mixed up specimens"))
    assert t.state.level is L.INTENSIVE_OUTPATIENT
    with pytest.raises(CommandRejected, match="can be reversed now"):
        t.do(ReverseStepUp(test_id, "clin-3", "again"))


def test_collection_is_recorded_and_a_cancelled_test_takes_no_result() -> None:
    t = iop_episode()
    test_id = t.order()
    collected = t.at - timedelta(hours=1)
    events = t.do(
        RecordSpecimenCollection(test_id, collected, observed=True, temperature_in_range=False, site="site-2")
    )
    assert [type(e).__name__ for e in events] == ["SpecimenCollected", "FlagRaised"]
    assert t.do(RecordSpecimenCollection(test_id, collected, True, False, "site-2")) == []  # the same again
    with pytest.raises(CommandRejected, match="already recorded as collected"):
        t.do(RecordSpecimenCollection(test_id, collected, False, True, "site-2"))
    assert t.state is not None and t.state.test(test_id).observed is True  # type: ignore[union-attr]
    other = t.order()
    t.do(CancelTest(other, "clin-1", "ordered in error"))
    with pytest.raises(CommandRejected, match=f"test {other} was cancelled; no result is expected"):
        t.result(other, TestResult.NEGATIVE)
    with pytest.raises(CommandRejected, match="already cancelled"):
        t.do(CancelTest(other, "clin-1", "again"))


def test_a_positive_never_discharges_even_at_the_most_intensive_level() -> None:
    t = iop_episode()
    t.result(t.order(), TestResult.POSITIVE, "alcohol")
    t.result(t.order(), TestResult.POSITIVE, "alcohol", ref="lab-2")  # at residential: nothing higher
    assert t.state is not None and t.state.status is EpisodeStatus.ACTIVE and t.state.level is L.RESIDENTIAL


def test_a_policy_without_a_drug_testing_section_schedules_no_tests() -> None:
    """Episodes started before random testing existed carry such a policy; they must keep running."""
    from continuum.domain.clock import next_due

    text = default_policy_text().split("\n[drug_testing]")[0]
    policy = load_policy(text)
    assert policy.drug_testing.per_week == {}
    j = Scenario()
    j.do(OpenEpisode("ep-1", "client-7", assessment=RecordAssessment((1, 1, 1, 1, 1, 1), "clin-1")))
    assert j.state is not None
    due = next_due(j.state, policy, j.at, DAY)
    assert due is not None and type(due.command).__name__ == "RequestReview"
    with pytest.raises(CommandRejected, match="no random testing at intensive_outpatient"):
        decide(
            j.state,
            DrawTestSchedule(draw_schedule(Random(1), L.INTENSIVE_OUTPATIENT, j.at, policy.drug_testing)),
            policy,
            j.at,
        )


def test_the_day_after_a_holiday_is_weighted_as_the_policy_says() -> None:
    christmas_week = datetime(2026, 12, 21, 9, 0, tzinfo=UTC)  # a Monday; the 26th is a Saturday
    draw = draw_schedule(Random(0), L.INTENSIVE_OUTPATIENT, christmas_week, TESTING)
    by_date = {
        (christmas_week + DAY * d).date().isoformat(): w for d, w in zip(draw.eligible_days, draw.weights, strict=True)
    }
    assert by_date["2026-12-26"] == 2.0 and by_date["2026-12-27"] == 1.0  # Saturday 1.0 x after-holiday 2.0
    chosen: Counter[str] = Counter()
    for seed in range(400):
        for d in draw_schedule(Random(seed), L.INTENSIVE_OUTPATIENT, christmas_week, TESTING).chosen_days:
            chosen[(christmas_week + DAY * d).date().isoformat()] += 1
    assert chosen["2026-12-26"] > chosen["2026-12-27"]


def test_holidays_must_be_month_day_dates() -> None:
    from continuum.domain.errors import PolicyError

    with pytest.raises(PolicyError, match="drug_testing.holidays must be a list"):
        load_policy(default_policy_text().replace('"12-25"]', '"Christmas"]'))


def test_a_refusal_or_a_no_show_needs_no_method_and_no_collection_time() -> None:
    """No specimen was collected, so there is no method and no collection time to give (issue 14, finding 6)."""
    from pydantic import ValidationError

    from continuum.api.schemas import TestResultBody
    from continuum.domain.decisions import admit

    for result in ("refused", "no_show"):
        TestResultBody(result=result, lab_reference="site-1")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        TestResultBody(result="negative", lab_reference="L-1")  # type: ignore[arg-type]
    policy = load_policy()
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    state = fold(
        decide(None, OpenEpisode("ep-r", "client-1", assessment=RecordAssessment((1,) * 6, "c-1")), policy, now)
    )
    ordered = decide(state, OrderTest("c-1"), policy, now)
    state, test_id = fold(ordered, state), ordered[0].test_id  # type: ignore[attr-defined]
    refused = RecordTestResult(test_id, TestResult.REFUSED, None, None, "site-1")
    admit(state, refused, now)
    events = decide(state, refused, policy, now)
    assert events[0].counts_as_positive and events[0].method is None and events[0].collected_at is None  # type: ignore[attr-defined]
    with pytest.raises(CommandRejected, match="names its method"):
        admit(state, RecordTestResult(test_id, TestResult.NEGATIVE, None, None, "L-1"), now)
