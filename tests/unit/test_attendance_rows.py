"""The attendance report's rows (one per client and care week in a period) and the period they cover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scenario import DAY, T0, WITHOUT_TESTING_TEXT, Scenario

from continuum.domain.attendance_report import ReportPeriodInvalid, report_period, report_rows
from continuum.domain.commands import RecordAttendance, RecordMissedSession, ScheduleSession
from continuum.domain.policy import default_policy_text, load_policy
from continuum.domain.services import MissReason, Modality

SERVICES_TEXT = default_policy_text()[default_policy_text().index("\n[services]") :]
POLICY = load_policy(WITHOUT_TESTING_TEXT + SERVICES_TEXT)
SERVICES = POLICY.services
assert SERVICES is not None

# Each care day: attended (minutes, telehealth), missed (excused or not), or nothing.
day_plans = st.lists(
    st.one_of(
        st.tuples(st.just("attended"), st.integers(min_value=1, max_value=240), st.booleans()),
        st.tuples(st.just("missed"), st.just(0), st.booleans()),
        st.tuples(st.just("none"), st.just(0), st.just(False)),
    ),
    min_size=1,
    max_size=35,
)


def _played(plan: list[tuple[str, int, bool]]) -> Scenario:
    scenario = Scenario.opened((1, 1, 1, 1, 1, 1), policy=POLICY)
    for number, (what, minutes, flag) in enumerate(plan):
        if what == "none":
            continue
        starts = T0 + DAY * number + timedelta(hours=3)
        scenario.advance(max(scenario.at, T0 + DAY * number + timedelta(hours=2)))
        scenario.do(ScheduleSession(f"S{number}", "group", starts, 240, "sched-1"))
        scenario.advance(T0 + DAY * number + timedelta(hours=8))
        if what == "attended":
            modality = Modality.TELEHEALTH if flag else Modality.IN_PERSON
            scenario.do(RecordAttendance(f"S{number}", minutes, modality, "clin-1"))
        else:
            scenario.do(RecordMissedSession(f"S{number}", flag, MissReason.OTHER, "clin-1"))
    scenario.advance(T0 + DAY * 36)
    return scenario


@settings(max_examples=40, deadline=None)
@given(day_plans, st.integers(min_value=0, max_value=35), st.integers(min_value=1, max_value=40))
def test_rows_hold_exactly_the_minutes_attended_in_their_weeks(
    plan: list[tuple[str, int, bool]], from_day: int, days: int
) -> None:
    scenario = _played(plan)
    state = scenario.state
    start, end = T0 + DAY * from_day, T0 + DAY * (from_day + days)
    rows = report_rows(state, SERVICES, POLICY.version, start, end, scenario.at, DAY)
    assert [r.care_week for r in rows] == sorted({r.care_week for r in rows})  # one row per care week
    for row in rows:
        assert row.week_starts_at < end and row.week_ends_at > start  # every row overlaps the period
        inside = [s for s in state.sessions if row.week_starts_at <= s.starts_at < row.week_ends_at]
        attended = [s for s in inside if s.status.value == "attended"]
        telehealth = sum(s.attended_minutes for s in attended if s.modality is Modality.TELEHEALTH)
        assert row.telehealth_minutes == telehealth
        assert row.in_person_minutes + row.telehealth_minutes == sum(s.attended_minutes for s in attended)
        assert row.missed_excused == sum(1 for s in inside if s.status.value == "missed" and s.excused)
        assert row.missed_unexcused == sum(1 for s in inside if s.status.value == "missed" and not s.excused)
        hours = (row.in_person_minutes + row.telehealth_minutes) / 60
        assert row.short_by_hours == pytest.approx(max(0.0, 9 - hours), abs=0.01)
    # A period covering all of it: the rows' minutes sum to every minute attended.
    whole = report_rows(state, SERVICES, POLICY.version, T0, T0 + DAY * 40, scenario.at, DAY)
    total = sum(minutes for what, minutes, _ in plan if what == "attended")
    assert sum(r.in_person_minutes + r.telehealth_minutes for r in whole) == total


def test_an_episode_without_sessions_has_no_rows() -> None:
    scenario = Scenario.opened((1, 1, 1, 1, 1, 1), policy=POLICY)
    assert report_rows(scenario.state, SERVICES, POLICY.version, T0, T0 + DAY * 30, T0 + DAY * 30, DAY) == []


def test_dates_are_whole_days_in_utc_with_to_included() -> None:
    start, end = report_period("2026-11-01", "2026-11-30")
    assert (start, end) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    start, end = report_period("2026-11-01T02:00:00+02:00", "2026-11-02T00:00:00Z")
    assert (start, end) == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("2026-02-30", "2026-03-01", "from"),
        ("2026-01-01", "soon", "to"),
        ("2026-01-01T00:00:00", "2026-01-02", "from"),
        ("2026-01-02", "2026-01-01", "to"),
        ("2025-01-01", "2026-06-01", "to"),
        ("0001-01-01", "0001-01-02", "from"),
        ("9998-12-31", "9999-12-31", "to"),
        ("2026-01-01", "2026-01-01T00:00:00+25:00", "to"),
    ],
)
def test_a_bad_period_names_its_field(start: str, end: str, field: str) -> None:
    with pytest.raises(ReportPeriodInvalid, match=f"^{field}: "):
        report_period(start, end)
