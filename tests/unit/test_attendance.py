"""Treatment services and attendance: the `[services]` policy, sessions, the weekly dose, non-attendance."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scenario import DAY, T0, WITHOUT_TESTING_TEXT, Scenario

from continuum.domain.attendance import attendance_dues, attendance_of, care_weeks
from continuum.domain.commands import (
    CancelSession,
    Discharge,
    PutOnHold,
    RecordAttendance,
    RecordMissedSession,
    RecordReEngagementReview,
    Resume,
    ScheduleSession,
)
from continuum.domain.decisions import decide
from continuum.domain.episode import DischargeReason, HoldReason
from continuum.domain.errors import CommandInvalid, CommandRejected, PolicyError
from continuum.domain.events import CareWeekClosed, FlagRaised, SessionAttended, SessionScheduled
from continuum.domain.flags import FlagFamily
from continuum.domain.fold import replace
from continuum.domain.levels import LevelOfCare
from continuum.domain.policy import default_policy_text, load_policy
from continuum.domain.retention import retire
from continuum.domain.services import CancelReason, MissReason, Modality, SessionStatus

SERVICES_TEXT = default_policy_text()[default_policy_text().index("\n[services]") :]
POLICY = load_policy(WITHOUT_TESTING_TEXT + SERVICES_TEXT)  # the care pathway and services, no random testing
SERVICES = POLICY.services
assert SERVICES is not None
IOP = (1, 1, 1, 1, 1, 1)  # mild everywhere: the baseline, intensive outpatient


def iop() -> Scenario:
    scenario = Scenario.opened(IOP, policy=POLICY)
    assert scenario.state.level is LevelOfCare.INTENSIVE_OUTPATIENT
    return scenario


def session(scenario: Scenario, session_id: str, at_day: float, minutes: int = 180, kind: str = "group") -> None:
    scenario.do(ScheduleSession(session_id, kind, T0 + DAY * at_day, minutes, "sched-1"))


def attend(scenario: Scenario, session_id: str, minutes: int = 180, modality: Modality = Modality.IN_PERSON) -> None:
    found = scenario.state.session(session_id)
    assert found is not None
    scenario.at = max(scenario.at, found.starts_at + timedelta(minutes=minutes))
    scenario.do(RecordAttendance(session_id, minutes, modality, "clin-1"))


def below_minimum_flags(scenario: Scenario) -> set[str]:
    return {f for f in scenario.flags() if f.startswith(FlagFamily.BELOW_MINIMUM_HOURS.value)}


# -- the policy ---------------------------------------------------------------------------------------------


def test_the_default_policy_has_asam_minimums_and_24_hour_levels() -> None:
    assert SERVICES.hours(LevelOfCare.INTENSIVE_OUTPATIENT).minimum == 9
    assert SERVICES.hours(LevelOfCare.PARTIAL_HOSPITALIZATION).minimum == 20
    assert SERVICES.hours(LevelOfCare.RESIDENTIAL).around_the_clock
    assert SERVICES.hours(LevelOfCare.WITHDRAWAL_MANAGEMENT).around_the_clock
    assert "medication_management" in SERVICES.kinds and SERVICES.expectations[0].kind == "family"


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('kinds = ["individual"', 'kinds = ["Individual"', "services.kinds"),
        ("intensive_outpatient = { minimum = 9", "intensive_outpatient = { minimum = 90", "hours_per_week.intensive"),
        (
            "residential = { around_the_clock = true }",
            "nowhere = { around_the_clock = true }",
            "hours_per_week.nowhere",
        ),
        ("unexcused_misses_in_a_row = 2", "unexcused_misses_in_a_row = 0", "services.unexcused_misses_in_a_row"),
        ("low_attendance_share = 0.75", "low_attendance_share = 75", "services.low_attendance_share"),
        ('kind = "family"', 'kind = "yoga"', "services.expectations[0].kind"),
        ("dropout_after_days = 14", "dropout_after_days = -1", "services.dropout_after_days"),
    ],
)
def test_a_malformed_services_table_is_refused_naming_the_key(old: str, new: str, key: str) -> None:
    text = default_policy_text()
    assert old in text
    with pytest.raises(PolicyError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_policy(text.replace(old, new, 1))


def test_a_policy_without_services_has_no_attendance_rules() -> None:
    scenario = Scenario.opened(IOP, policy=load_policy(WITHOUT_TESTING_TEXT))
    with pytest.raises(CommandRejected, match="no \\[services\\]"):
        session(scenario, "S1", 1)


# -- sessions -----------------------------------------------------------------------------------------------


def test_a_session_is_scheduled_at_the_clients_level_and_a_repeat_records_nothing() -> None:
    scenario = iop()
    [scheduled] = scenario.do(ScheduleSession("S1", "group", T0 + DAY, 180, "sched-1"))
    assert isinstance(scheduled, SessionScheduled) and scheduled.level is LevelOfCare.INTENSIVE_OUTPATIENT
    assert scenario.do(ScheduleSession("S1", "group", T0 + DAY, 180, "sched-1")) == []
    with pytest.raises(CommandRejected, match="already scheduled"):
        scenario.do(ScheduleSession("S1", "group", T0 + DAY * 2, 180, "sched-1"))
    attend(scenario, "S1")
    assert scenario.do(RecordAttendance("S1", 180, Modality.IN_PERSON, "clin-1")) == []


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (ScheduleSession("S2", "yoga", T0 + DAY, 60, "sched-1"), "kind"),
        (ScheduleSession("S2", "group", T0 + DAY, 0, "sched-1"), "minutes"),
        (ScheduleSession("S2", "group", T0 - DAY, 60, "sched-1"), "starts_at"),
        (RecordAttendance("S1", 181, Modality.IN_PERSON, "clin-1"), "minutes"),
    ],
)
def test_an_invalid_value_is_refused_naming_the_field(command: object, field: str) -> None:
    scenario = iop()
    session(scenario, "S1", 0.5)
    scenario.wait(1)
    with pytest.raises(CommandInvalid, match=f"^{field}:"):
        scenario.do(command)


def test_state_conflicts_are_refused() -> None:
    scenario = iop()
    session(scenario, "S1", 1)
    with pytest.raises(CommandRejected, match="has not begun"):
        scenario.do(RecordAttendance("S1", 60, Modality.IN_PERSON, "clin-1"))
    with pytest.raises(CommandRejected, match="not scheduled"):
        scenario.do(RecordAttendance("S9", 60, Modality.IN_PERSON, "clin-1"), after_days=2)
    scenario.do(CancelSession("S1", CancelReason.WEATHER, "sched-1"))
    with pytest.raises(CommandRejected, match="already recorded as cancelled"):
        scenario.do(RecordMissedSession("S1", False, MissReason.NO_SHOW, "clin-1"))
    scenario.do(Discharge(DischargeReason.TRANSFERRED))
    with pytest.raises(CommandRejected, match="closed"):
        session(scenario, "S2", 3)


# -- the weekly dose ----------------------------------------------------------------------------------------


def test_a_week_below_the_iop_minimum_raises_a_flag_saying_by_how_much() -> None:
    scenario = iop()
    for number, at_day in enumerate((0.5, 2.5, 4.5)):
        session(scenario, f"S{number}", at_day)
    attend(scenario, "S0")
    attend(scenario, "S1", 120, Modality.TELEHEALTH)
    scenario.do(RecordMissedSession("S2", True, MissReason.ILLNESS, "clin-1"), after_days=2)
    scenario.advance(T0 + DAY * 7.5)
    [closed] = [e for e in scenario.recorded if isinstance(e, CareWeekClosed)]
    assert (closed.week, closed.attended_minutes, closed.telehealth_minutes, closed.minimum_hours) == (1, 300, 120, 9)
    [raised] = [e for e in scenario.recorded if isinstance(e, FlagRaised) and e.flag.startswith("below")]
    assert raised.flag == "below_minimum_hours:week-1" and "5.0 h delivered of the 9 h minimum, 4.0 h short" in (
        raised.reason
    )
    [week] = care_weeks(scenario.state, SERVICES, scenario.at, DAY)[:1]
    assert (week.hours, week.telehealth_hours, week.short_by_hours) == (5.0, 2.0, 4.0)


def test_a_week_that_meets_the_minimum_raises_nothing() -> None:
    scenario = iop()
    for number, at_day in enumerate((0.5, 2.5, 4.5)):
        session(scenario, f"S{number}", at_day)
        attend(scenario, f"S{number}")
    scenario.advance(T0 + DAY * 7.5)
    assert below_minimum_flags(scenario) == set()
    summary = attendance_of(scenario.state, SERVICES, scenario.at, DAY)
    assert summary.sessions_attended == 3 and summary.weeks[0].minimum_hours == 9


def test_a_24_hour_level_has_no_hourly_minimum() -> None:
    scenario = Scenario.opened((1, 1, 1, 1, 1, 3), policy=POLICY)  # an unstable environment: residential
    assert scenario.state.level is LevelOfCare.RESIDENTIAL
    session(scenario, "S1", 1)
    scenario.advance(T0 + DAY * 15)
    assert below_minimum_flags(scenario) == set()
    assert all(w.minimum_hours is None for w in care_weeks(scenario.state, SERVICES, scenario.at, DAY))


# -- non-attendance -----------------------------------------------------------------------------------------


def test_two_unexcused_misses_in_a_row_open_a_re_engagement_review_never_a_discharge() -> None:
    scenario = iop()
    session(scenario, "S1", 1)
    session(scenario, "S2", 2)
    scenario.do(RecordMissedSession("S1", False, MissReason.NO_SHOW, "clin-1"), after_days=1.5)
    assert "re_engagement_review" not in scenario.flags()
    scenario.do(RecordMissedSession("S2", False, MissReason.TRANSPORTATION, "clin-1"), after_days=1)
    assert "re_engagement_review" in scenario.flags() and scenario.state.status.value == "active"
    scenario.do(RecordReEngagementReview("clin-1", "called the client; transport arranged"))
    assert "re_engagement_review" not in scenario.flags()


def test_a_client_who_stops_attending_is_flagged_as_possibly_dropped_out() -> None:
    scenario = iop()
    session(scenario, "S1", 1)
    attend(scenario, "S1")
    session(scenario, "S2", 20)
    scenario.advance(T0 + DAY * 14.5)
    assert "possible_dropout" not in scenario.flags()
    scenario.advance(T0 + DAY * 15.5)
    assert "possible_dropout" in scenario.flags() and scenario.state.status.value == "active"
    attend(scenario, "S2")
    assert "possible_dropout" not in scenario.flags()


def test_low_attendance_over_two_weeks_opens_a_re_engagement_review() -> None:
    scenario = iop()
    for week in range(2):
        session(scenario, f"S{week}", 7 * week + 1)
        attend(scenario, f"S{week}")
    scenario.advance(T0 + DAY * 14.5)
    assert "re_engagement_review" in scenario.flags()


# -- properties over attendance sequences -------------------------------------------------------------------

day_plans = st.lists(
    st.tuples(
        st.sampled_from(["attended", "missed", "excused", "cancelled", "none"]),
        st.integers(min_value=1, max_value=240),
        st.booleans(),  # telehealth
    ),
    min_size=1,
    max_size=28,
)
holds = st.lists(st.tuples(st.integers(min_value=0, max_value=27), st.integers(min_value=1, max_value=6)), max_size=2)


@settings(max_examples=40, deadline=None)
@given(day_plans, holds)
def test_weekly_hours_are_the_attended_minutes_and_a_hold_never_makes_a_week_below_minimum(
    plan: list[tuple[str, int, bool]], hold_plan: list[tuple[int, int]]
) -> None:
    scenario = iop()
    hold_days = {start + d for start, length in hold_plan for d in range(length)}
    attended_minutes = 0
    for number, (what, minutes, telehealth) in enumerate(plan):
        held_today = number in hold_days
        if held_today and scenario.state.status.value == "active":
            scenario.advance(T0 + DAY * number + timedelta(hours=1))
            scenario.do(PutOnHold(HoldReason.LEAVE))
        elif not held_today and scenario.state.status.value == "on_hold":
            scenario.advance(T0 + DAY * number + timedelta(hours=1))
            scenario.do(Resume())
        if what == "none":
            continue
        sid = f"S{number}"
        scenario.advance(max(scenario.at, T0 + DAY * number + timedelta(hours=2)))
        scenario.do(ScheduleSession(sid, "group", T0 + DAY * number + timedelta(hours=3), 240, "sched-1"))
        scenario.advance(T0 + DAY * number + timedelta(hours=8))
        if what == "attended":
            scenario.do(RecordAttendance(sid, minutes, Modality.TELEHEALTH if telehealth else Modality.IN_PERSON, "c1"))
            attended_minutes += minutes
        elif what == "cancelled":
            scenario.do(CancelSession(sid, CancelReason.HOLIDAY, "sched-1"))
        else:
            scenario.do(RecordMissedSession(sid, what == "excused", MissReason.OTHER, "clin-1"))
    if scenario.state.status.value == "on_hold":
        scenario.do(Resume())
    scenario.advance(T0 + DAY * 29)
    weeks = care_weeks(scenario.state, SERVICES, scenario.at, DAY)
    assert sum(w.attended_minutes for w in weeks) == attended_minutes
    for week in weeks:
        inside = [s for s in scenario.state.sessions if week.starts_at <= s.starts_at < week.ends_at]
        assert week.attended_minutes == sum(s.attended_minutes for s in inside if s.status is SessionStatus.ATTENDED)
        assert week.telehealth_minutes <= week.attended_minutes
        if week.held:
            assert week.minimum_hours is None and week.short_by_hours == 0
            assert f"below_minimum_hours:week-{week.week}" not in scenario.flags()
    recorded = sum(e.minutes for e in scenario.recorded if isinstance(e, SessionAttended))
    assert recorded == attended_minutes


def test_sessions_leave_the_working_state_after_eight_care_weeks_and_say_so() -> None:
    scenario = iop()
    session(scenario, "S1", 1)
    attend(scenario, "S1")
    session(scenario, "S2", 60)
    scenario.advance(T0 + DAY * 60)
    kept = retire(scenario.state, scenario.at, DAY)
    assert [s.session_id for s in kept.sessions] == ["S2"] and kept.sessions_closed_before is not None
    assert [type(c).__name__ for c, _ in attendance_dues(replace(kept, sessions=()), POLICY, DAY)][:1] == [
        "CloseCareWeek"
    ]  # the weeks go on being tallied once every session has left the working state
    with pytest.raises(CommandRejected, match="closed to new records"):
        decide(kept, RecordMissedSession("S1", False, MissReason.NO_SHOW, "clin-1"), POLICY, scenario.at)
    with pytest.raises(CommandRejected, match="closed to new records"):
        decide(kept, ScheduleSession("S0", "group", T0 + DAY, 60, "sched-1"), POLICY, scenario.at)


def test_a_re_engagement_review_not_done_by_its_due_date_is_escalated() -> None:
    scenario = iop()
    for number in (1, 2):
        session(scenario, f"S{number}", number)
    scenario.do(RecordMissedSession("S1", False, MissReason.NO_SHOW, "clin-1"), after_days=1.5)
    scenario.do(RecordMissedSession("S2", False, MissReason.NO_SHOW, "clin-1"), after_days=1)
    assert scenario.state.re_engagement_due_at == scenario.at + DAY * 3
    scenario.advance(scenario.at + DAY * 2.9)
    assert "re_engagement_review_overdue" not in scenario.flags()
    scenario.advance(scenario.at + DAY * 0.2)
    assert "re_engagement_review_overdue" in scenario.flags() and scenario.state.status.value == "active"
    scenario.do(RecordReEngagementReview("clin-1"))
    assert {"re_engagement_review", "re_engagement_review_overdue"}.isdisjoint(scenario.flags())
    assert scenario.state.re_engagement_due_at is None
