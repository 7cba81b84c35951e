"""Outcome measures on episodes built with the domain's own decide and fold, with answers known by hand."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scenario import DAY, POLICY, T0, WITHOUT_TESTING, Scenario

from continuum.domain.aftercare import FollowUpOutcome
from continuum.domain.commands import (
    Discharge,
    OpenEpisode,
    RecordAssessment,
    RecordAttendance,
    RecordFollowUpOutcome,
    RecordReviewOutcome,
    RequestFollowUp,
    ScheduleSession,
)
from continuum.domain.episode import DischargeReason, ReviewOutcome
from continuum.domain.events import DomainEvent, FollowUpsScheduled
from continuum.domain.levels import LevelOfCare
from continuum.domain.measures import (
    MEASURED_EVENT_TYPES,
    Grouping,
    Measures,
    MeasuresError,
    Period,
    Unit,
    compute_measures,
    default_period,
    parse_groupings,
)
from continuum.domain.services import Modality
from continuum.domain.testing import TestMethod, TestResult

IOP = (1, 1, 1, 1, 1, 1)  # mild everywhere: intensive outpatient
RESIDENTIAL = (0, 0, 0, 0, 0, 3)  # an unstable home rules out the outpatient levels
WITHDRAWAL = (3, 1, 2, 2, 2, 2)  # withdrawal potential: detox first, then residential
YEAR = Period.of_dates(T0.date(), (T0 + DAY * 365).date())


def measures(*histories: Sequence[DomainEvent], by: Sequence[Grouping] = (), period: Period = YEAR) -> Measures:
    return compute_measures(histories, period, by=by)


def value(result: Measures, name: str, **key: str) -> tuple[float, float, float | None]:
    wanted = tuple((Grouping(g), v) for g, v in key.items())
    group = next(g for g in result.groups if g.key == wanted)
    found = group.get(name)
    return found.numerator, found.denominator, found.value


def observed_until(days: float) -> list[DomainEvent]:
    """Another client's intake `days` after T0: the log is observed up to there."""
    scenario = Scenario(WITHOUT_TESTING, T0 + DAY * days)
    scenario.do(OpenEpisode(f"ep-seen-{days}", "client-99"))
    return scenario.recorded


def follow_up(scenario: Scenario, follow_up_id: str, outcome: FollowUpOutcome) -> None:
    """At its due date, the follow-up is requested and its outcome recorded."""
    planned = scenario.state.follow_up(follow_up_id)
    assert planned is not None
    scenario.at = max(scenario.at, planned.due_at)
    scenario.do(RequestFollowUp(follow_up_id))
    scenario.do(RecordFollowUpOutcome(follow_up_id, outcome, "clin-1"))


def stepped_down_then_ama(episode_id: str = "ep-a") -> Scenario:
    """IOP 30 days, goals met into outpatient, then against medical advice 10 days later."""
    scenario = Scenario.opened(IOP, episode_id=episode_id, policy=WITHOUT_TESTING)
    scenario.step_down()
    scenario.do(Discharge(DischargeReason.AGAINST_MEDICAL_ADVICE), after_days=10)
    return scenario


def test_completion_per_level_counts_goals_met_against_ama_and_the_length_of_each_stay() -> None:
    a = stepped_down_then_ama()
    b = Scenario.opened(RESIDENTIAL, episode_id="ep-b", policy=WITHOUT_TESTING)
    b.step_down()  # residential 30 days, goals met, into IOP (still open)
    result = measures(a.recorded, b.recorded, by=[Grouping.LEVEL])
    assert value(result, "completion", level="intensive_outpatient") == (1, 1, 100.0)
    assert value(result, "completion", level="residential") == (1, 1, 100.0)
    assert value(result, "completion", level="outpatient") == (0, 1, 0.0)
    assert value(result, "against_medical_advice", level="outpatient") == (1, 1, 100.0)
    assert value(result, "completion") == (2, 3, 66.6667)
    assert value(result, "length_of_stay", level="outpatient") == (10.0, 1, 10.0)
    assert value(result, "length_of_stay") == (70.0, 3, 23.3333)  # 30 + 10 + 30; the open IOP stay not yet
    assert result.episodes == 2 and result.policy_versions == (WITHOUT_TESTING.version,)


def test_retention_counts_what_could_be_observed_and_an_early_close_is_known_at_once() -> None:
    a = stepped_down_then_ama()  # closed at day 40
    open_one = Scenario.opened(IOP, episode_id="ep-o", policy=WITHOUT_TESTING)
    result = measures(a.recorded, open_one.recorded, observed_until(70))
    assert value(result, "retention_30d") == (2, 2, 100.0)  # the intake at day 70 was never admitted
    assert value(result, "retention_60d") == (1, 2, 50.0)  # a left at day 40; the open one is still in at 60
    assert value(result, "retention_90d") == (0, 1, 0.0)  # day 90 of the open one is not observable yet


def test_a_positive_that_waits_for_confirmation_counts_days_to_the_step_up_and_its_cause() -> None:
    scenario = Scenario.opened(IOP, episode_id="ep-p")
    test_id = scenario.order()
    scenario.wait(1)
    scenario.result(test_id, TestResult.POSITIVE, "cocaine", method=TestMethod.PRESUMPTIVE, ref="lab-1")
    assert scenario.state.level is LevelOfCare.INTENSIVE_OUTPATIENT  # waits for the confirmation
    scenario.wait(2)
    scenario.result(test_id, TestResult.POSITIVE, "cocaine", method=TestMethod.CONFIRMED, ref="lab-2")
    assert scenario.state.level is LevelOfCare.RESIDENTIAL
    scenario.wait(4)
    other = scenario.order()
    scenario.result(other, TestResult.NEGATIVE, ref="lab-3")
    # observed until day 14: 3 days at IOP, 11 at residential
    result = measures(scenario.recorded, observed_until(14), by=[Grouping.LEVEL])
    assert value(result, "days_positive_to_step_up") == (2.0, 1, 2.0)
    assert value(result, "step_up_cause_positive_test") == (1, 1, 100.0)
    assert value(result, "step_ups", level="intensive_outpatient") == (1, 3 / 7, round(100 * 7 / 3, 4))
    assert value(result, "step_ups") == (1, 2.0, 50.0)  # 14 days = 2 client-weeks
    assert value(result, "positive_rate", level="intensive_outpatient") == (1, 1, 100.0)
    assert value(result, "positive_rate", level="residential") == (0, 1, 0.0)
    assert result.step_up_causes == {"positive_test": 1}


def test_a_corrected_result_counts_as_what_the_correction_says() -> None:
    scenario = Scenario.opened(IOP, episode_id="ep-c")
    test_id = scenario.order()
    scenario.result(test_id, TestResult.POSITIVE, "cocaine", method=TestMethod.PRESUMPTIVE, ref="lab-1")
    scenario.result(test_id, TestResult.NEGATIVE, method=TestMethod.PRESUMPTIVE, ref="lab-2", corrects="lab-1")
    assert value(measures(scenario.recorded), "positive_rate") == (0, 1, 0.0)


def test_follow_up_after_leaving_residential_within_7_and_30_days() -> None:
    seen = Scenario.opened(RESIDENTIAL, episode_id="ep-s", policy=WITHOUT_TESTING)
    events = seen.step_down()
    [plan] = [e for e in events if isinstance(e, FollowUpsScheduled)]
    follow_up(seen, plan.follow_ups[0].follow_up_id, FollowUpOutcome.ABSTINENT)  # on day 7 after leaving
    unseen = Scenario.opened(RESIDENTIAL, episode_id="ep-u", policy=WITHOUT_TESTING)
    unseen.step_down()
    unseen.wait(10)
    unseen.do(Discharge(DischargeReason.ADMINISTRATIVE))  # observed 10 days after leaving: the 30-day window is open
    result = measures(seen.recorded, unseen.recorded, by=[Grouping.LEVEL])
    assert value(result, "follow_up_7d", level="residential") == (1, 2, 50.0)
    assert value(result, "follow_up_30d", level="residential") == (1, 1, 100.0)
    assert value(result, "administrative", level="intensive_outpatient") == (1, 1, 100.0)


def test_withdrawal_management_into_residential_is_not_leaving_24_hour_care() -> None:
    scenario = Scenario.opened(WITHDRAWAL, episode_id="ep-w", policy=WITHOUT_TESTING)
    scenario.step_down()
    assert scenario.state.level is LevelOfCare.RESIDENTIAL
    scenario.wait(40)
    result = measures(scenario.recorded)
    assert value(result, "follow_up_7d")[1] == 0 and value(result, "completion") == (1, 1, 100.0)


def test_readmission_is_a_new_episode_of_the_same_client_within_the_window() -> None:
    first = Scenario.opened(IOP, episode_id="ep-1", policy=WITHOUT_TESTING)
    first.do(Discharge(DischargeReason.AGAINST_MEDICAL_ADVICE), after_days=5)
    again = Scenario(WITHOUT_TESTING, T0 + DAY * 25)  # 20 days after the close, the same client
    again.do(OpenEpisode("ep-2", "client-7", "ep-1", RecordAssessment(IOP, "clin-1")))
    other = Scenario(WITHOUT_TESTING)
    other.do(OpenEpisode("ep-3", "client-4", assessment=RecordAssessment(IOP, "clin-1")))
    other.do(Discharge(DischargeReason.COMPLETED), after_days=5)
    result = measures(first.recorded, again.recorded, other.recorded, observed_until(60))
    assert value(result, "readmission_30d") == (1, 2, 50.0)
    assert value(result, "readmission_90d") == (1, 1, 100.0)  # ep-3's 90 days are not over: excluded


def test_aftercare_outcomes_and_lost_to_follow_up() -> None:
    scenario = Scenario.opened(IOP, episode_id="ep-l", policy=WITHOUT_TESTING)
    events = scenario.to_aftercare()
    [plan] = [e for e in events if isinstance(e, FollowUpsScheduled)]
    for planned in plan.follow_ups[:3]:  # 30, 60, 90 days: not reached three times closes the episode
        follow_up(scenario, planned.follow_up_id, FollowUpOutcome.NOT_REACHED)
    assert scenario.state.discharge_reason is DischargeReason.LOST_TO_FOLLOW_UP
    result = measures(scenario.recorded, by=[Grouping.LEVEL])
    assert value(result, "aftercare_30d_not_reached", level="aftercare") == (1, 1, 100.0)
    assert value(result, "aftercare_90d_abstinent", level="aftercare") == (0, 1, 0.0)
    assert value(result, "lost_to_follow_up") == (1, 1, 100.0)
    assert value(result, "dropped_out", level="aftercare") == (1, 1, 100.0)


def test_attendance_against_the_minimum_hours() -> None:
    scenario = Scenario.opened(IOP, episode_id="ep-t", policy=POLICY)
    for number, at_day in enumerate((0.5, 2.5, 4.5, 7.5)):
        scenario.do(ScheduleSession(f"S{number}", "group", T0 + DAY * at_day, 180, "sched-1"))
    for number in range(4):  # 9 h in week 1, 3 h in week 2 (the minimum is 9)
        session = scenario.state.session(f"S{number}")
        assert session is not None
        scenario.at = max(scenario.at, session.starts_at + timedelta(minutes=180))
        scenario.do(RecordAttendance(f"S{number}", 180, Modality.IN_PERSON, "clin-1"))
    scenario.advance(T0 + DAY * 14.5)
    result = measures(scenario.recorded, by=[Grouping.LEVEL])
    assert value(result, "attendance_weeks_met", level="intensive_outpatient") == (1, 2, 50.0)
    assert value(result, "attendance_hours") == (12.0, 18.0, 66.6667)


def test_groups_by_level_and_admission_cohort_and_the_period_bounds_what_is_counted() -> None:
    january = stepped_down_then_ama("ep-j")
    march = Scenario(WITHOUT_TESTING, T0 + DAY * 60)
    march.do(OpenEpisode("ep-m", "client-3", assessment=RecordAssessment(IOP, "clin-1")))
    march.do(Discharge(DischargeReason.ADMINISTRATIVE), after_days=3)
    result = measures(january.recorded, march.recorded, by=[Grouping.COHORT, Grouping.LEVEL])
    labels = [g.label for g in result.groups]
    assert labels == [
        "all",
        "cohort=2026-01, level=intensive_outpatient",
        "cohort=2026-01, level=outpatient",
        "cohort=2026-03, level=intensive_outpatient",
    ]
    assert value(result, "administrative", cohort="2026-03", level="intensive_outpatient") == (1, 1, 100.0)
    only_january = Period.of_dates(T0.date(), (T0 + DAY * 30).date())
    assert value(measures(january.recorded, march.recorded, period=only_january), "completion") == (1, 1, 100.0)


def test_groups_by_the_facility_an_episode_opened_at_and_one_from_before_facilities_at_the_default() -> None:
    reno = stepped_down_then_ama("ep-reno")
    austin = Scenario(WITHOUT_TESTING, T0)
    austin.do(OpenEpisode("ep-austin", "client-4", assessment=RecordAssessment(IOP, "clin-1"), facility_id="tx-austin"))
    austin.do(Discharge(DischargeReason.ADMINISTRATIVE), after_days=3)

    result = measures(reno.recorded, austin.recorded, by=[Grouping.FACILITY])

    assert [g.label for g in result.groups] == ["all", "facility=main", "facility=tx-austin"]
    assert value(result, "administrative", facility="tx-austin") == (1, 1, 100.0)
    assert value(result, "administrative", facility="main") == (0, 2, 0.0)  # two stays, neither administrative
    assert parse_groupings("facility,level") == (Grouping.FACILITY, Grouping.LEVEL)


def test_a_period_that_ends_before_it_begins_is_refused_naming_the_parameter() -> None:
    with pytest.raises(MeasuresError, match="^to: the period ends") as refused:
        Period.of_dates(T0.date(), (T0 - DAY).date())
    assert refused.value.parameter == "to"


def test_no_episodes_give_empty_measures_not_an_error() -> None:
    result = measures()
    assert result.episodes == 0 and result.observed_until is None
    assert all(v.value is None for v in result.total.values)


@settings(max_examples=20, deadline=None)
@given(st.permutations(range(4)))
def test_the_order_episodes_come_in_does_not_change_a_number(order: list[int]) -> None:
    histories = [
        stepped_down_then_ama("ep-a").recorded,
        Scenario.opened(RESIDENTIAL, episode_id="ep-b", policy=WITHOUT_TESTING).recorded,
        Scenario.opened(WITHDRAWAL, episode_id="ep-c", policy=WITHOUT_TESTING).recorded,
        stepped_down_then_ama("ep-d").recorded,
    ]
    by = [Grouping.LEVEL, Grouping.COHORT]
    assert compute_measures([histories[i] for i in order], YEAR, by=by) == compute_measures(histories, YEAR, by=by)


def test_leaving_out_the_events_measures_do_not_read_changes_no_number() -> None:
    scenario = Scenario.opened(IOP, episode_id="ep-f")
    scenario.advance(T0 + DAY * 20)  # schedule draws, tests ordered, flags: events the measures skip
    test_id = scenario.order()
    scenario.result(test_id, TestResult.POSITIVE, "cocaine")
    scenario.to_aftercare()
    histories = [scenario.recorded, stepped_down_then_ama().recorded]
    kept = [[e for e in h if e.type_name() in MEASURED_EVENT_TYPES] for h in histories]
    assert len(kept[0]) < len(histories[0])
    full, filtered = (
        compute_measures(histories, YEAR, by=[Grouping.LEVEL]),
        compute_measures(kept, YEAR, by=[Grouping.LEVEL]),
    )
    assert full.groups == filtered.groups and full.step_up_causes == filtered.step_up_causes == {"positive_test": 1}


def test_the_default_period_is_the_last_90_days_and_never_overflows() -> None:
    today = T0.date()
    period = default_period(None, None, today)
    assert (period.end.date(), (period.end.date() - period.start.date()).days) == (today, 89)
    with pytest.raises(MeasuresError, match="^from: give the first day"):
        default_period(None, date.min, today)
    whole = default_period(date.min, date.max, today)
    assert whole.start.year == 1 and whole.end.year == 9999
    assert compute_measures([stepped_down_then_ama().recorded], whole).total.get("completion").denominator == 2


ACTIONS = st.lists(
    st.one_of(
        st.just("step_down"),
        st.just("positive"),
        st.sampled_from([r.value for r in DischargeReason]),
        st.integers(1, 40),  # wait this many days
    ),
    max_size=6,
)


def _played(number: int, ratings: tuple[int, ...], actions: list[str | int]) -> list[DomainEvent]:
    """An episode driven by `actions` (each one skipped where the episode's state refuses it)."""
    scenario = Scenario.opened(ratings, episode_id=f"ep-h{number}")
    for action in actions:
        if scenario.state.discharge_reason is not None:
            break
        if isinstance(action, int):
            scenario.advance(scenario.at + DAY * action)  # reviews fall due, tests are ordered, as in the workflow
        elif action == "step_down":
            pending = scenario.state.pending_review
            if pending is not None:
                scenario.do(RecordReviewOutcome(pending.review_id, ReviewOutcome.GOALS_MET, "ther-1"))
            elif scenario.state.level not in (None, LevelOfCare.AFTERCARE):
                scenario.step_down()
        elif action == "positive":
            if scenario.state.level is not LevelOfCare.WITHDRAWAL_MANAGEMENT:
                scenario.result(scenario.order(), TestResult.POSITIVE, "cocaine")
        else:
            scenario.do(Discharge(DischargeReason(action)))
    return scenario.recorded


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([IOP, RESIDENTIAL, WITHDRAWAL]), ACTIONS), min_size=1, max_size=4))
def test_every_rate_is_a_share_and_the_levels_partition_the_whole(episodes: list[tuple[tuple[int, ...], Any]]) -> None:
    histories = [_played(n, ratings, actions) for n, (ratings, actions) in enumerate(episodes)]
    result = compute_measures(histories, YEAR, by=[Grouping.LEVEL])
    for group in result.groups:
        for v in group.values:
            assert v.numerator >= 0 and v.denominator >= 0
            if v.definition.unit is Unit.PERCENT and v.name != "attendance_hours":
                assert v.numerator <= v.denominator, (group.label, v)
    for number, whole in enumerate(result.total.values):
        parts = [g.values[number] for g in result.groups[1:]]
        assert sum(p.numerator for p in parts) == pytest.approx(whole.numerator), whole.name
        assert sum(p.denominator for p in parts) == pytest.approx(whole.denominator), whole.name
