"""The dashboard's triage readings (api/triage.py, api/episode_page.py): alerts grouped per client and sorted by
urgency, flags as badges by family, levels by name, care days on the timeline's axis, readable instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from continuum.api.episode_page import CareClock
from continuum.api.triage import (
    ALERT_LIST_OF,
    LEVEL_NAMES,
    alert_groups,
    care_day_ticks,
    care_days,
    flag_badges,
    iso_time,
    level_name,
    readable_text,
    readable_time,
)
from continuum.domain.flags import FlagFamily
from continuum.domain.levels import LevelOfCare

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _missing(episode: str, test: str, days_overdue: float) -> dict[str, object]:
    return {
        "episode_id": episode,
        "client_id": f"client-{episode}",
        "level": "intensive_outpatient",
        "test_id": test,
        "due_at": NOW - DAY * days_overdue,
    }


def test_one_clients_thirty_missing_results_are_one_row_with_a_count_and_the_oldest_age() -> None:
    rows = [_missing("EP-A", f"EP-A.T{n}", n / 2) for n in range(1, 31)] + [_missing("EP-B", "EP-B.T1", 40)]

    groups = alert_groups(ALERT_LIST_OF["missing_results"], rows, NOW, DAY)

    assert [(g.episode_id, g.count) for g in groups] == [("EP-B", 1), ("EP-A", 30)]  # 40 days overdue before 15
    assert groups[1].days == 15 and groups[1].at == NOW - DAY * 15
    assert groups[1].subjects[0] == "EP-A.T1" and groups[1].client_id == "client-EP-A"


def test_recent_alerts_put_the_client_with_the_most_first_then_the_newest_and_name_the_substances() -> None:
    positives = [
        {"episode_id": "EP-A", "test_id": "T1", "result": "positive", "substances": ["fentanyl"], "recorded_at": NOW},
        {"episode_id": "EP-B", "test_id": "T2", "result": "positive", "substances": ["cocaine"], "recorded_at": NOW},
        {"episode_id": "EP-B", "test_id": "T3", "result": "refused", "substances": [], "recorded_at": NOW - DAY},
    ]

    groups = alert_groups(ALERT_LIST_OF["positives"], positives, NOW, DAY)
    steps = alert_groups(
        ALERT_LIST_OF["step_ups"],
        [{"episode_id": "EP-C", "from_level": "outpatient", "to_level": "residential", "cause": "positive test"}],
        NOW,
        DAY,
    )

    assert [(g.episode_id, g.count) for g in groups] == [("EP-B", 2), ("EP-A", 1)]
    assert groups[0].details == ("positive: cocaine", "refused") and groups[0].days == 0
    assert steps[0].details == ("outpatient → residential (positive test)",)


@given(st.lists(st.tuples(st.sampled_from("ABCDE"), st.floats(0, 400)), max_size=40))
def test_overdue_groups_are_one_per_client_and_never_less_overdue_before_more(found: list[tuple[str, float]]) -> None:
    rows = [_missing(f"EP-{e}", f"T{n}", days) for n, (e, days) in enumerate(found)]

    groups = alert_groups(ALERT_LIST_OF["missing_results"], rows, NOW, DAY)

    ages = [g.days for g in groups]
    assert len({g.episode_id for g in groups}) == len(groups) == len({e for e, _ in found})
    assert sum(g.count for g in groups) == len(rows)
    assert ages == sorted(ages, reverse=True)  # type: ignore[type-var]


def test_flags_are_a_few_badges_by_family_with_counts_and_their_subjects() -> None:
    flags = [f"result_missing:EP-A.T{n}" for n in range(7)] + ["review_overdue", "analyte_absent:methadone", "new:x"]

    badges = flag_badges(flags)

    assert [(b.label, b.count) for b in badges] == [
        ("result missing", 7),
        ("review overdue", 1),
        ("expected analyte absent", 1),
        ("new", 1),  # a family this release does not know is shown as spelled, never dropped
    ]
    assert badges[0].subjects[-1] == "EP-A.T6" and badges[0].family == FlagFamily.RESULT_MISSING.value
    assert flag_badges([]) == []


def test_every_level_has_one_readable_name_and_anything_else_reads_plainly() -> None:
    assert set(LEVEL_NAMES) == set(LevelOfCare)
    assert level_name("intensive_outpatient") == level_name(LevelOfCare.INTENSIVE_OUTPATIENT)
    assert level_name("intensive_outpatient") == "intensive outpatient (IOP)"
    assert level_name(None) == "-" and level_name("none") == "none"


def test_instants_read_to_the_minute_without_microseconds() -> None:
    at = "2026-12-02T09:05:07.123456+00:00"

    assert readable_time(at) == "2 Dec 2026 09:05 UTC"
    assert iso_time(at) == "2026-12-02T09:05:07Z"
    assert readable_time(None) == "-" and iso_time("") == ""
    assert care_days(0.25) == "0.2 d" and care_days(12.4) == "12 d" and care_days(None) == "-"


def test_the_timeline_axis_counts_care_days_from_day_one_at_a_whole_step() -> None:
    assert care_day_ticks(timedelta(hours=3), DAY) == [(0.0, "day 1"), (1.0, "day 2")]
    ticks = care_day_ticks(DAY * 45, DAY)
    assert [label for _, label in ticks] == [f"day {1 + 7 * n}" for n in range(7)]
    assert all(0 <= fraction <= 1 for fraction, _ in ticks)
    compressed = care_day_ticks(timedelta(seconds=90), timedelta(seconds=2))  # a demo's 2-second care day
    assert [label for _, label in compressed][:3] == ["day 1", "day 8", "day 15"]


def test_the_care_clock_places_instants_and_names_their_care_day() -> None:
    clock = CareClock(NOW, NOW + DAY * 10, DAY)

    assert clock.x(NOW) == 170 and clock.x(NOW + DAY * 10) == 950
    assert clock.day_of(NOW) == 1 and clock.day_of(NOW + DAY * 2.5) == 3
    assert clock.day_of((NOW + DAY).isoformat()) == 2
    assert [label for _, label in clock.ticks()][:2] == ["day 1", "day 2"]


def test_a_recorded_reason_reads_its_due_date_without_microseconds() -> None:
    reason = "the initial treatment plan was due 2026-12-03T13:03:56.204970+00:00: the clinical director is alerted"

    assert readable_text(reason) == (
        'the initial treatment plan was due <time datetime="2026-12-03T13:03:56Z">3 Dec 2026 13:03 UTC</time>:'
        " the clinical director is alerted"
    )
    assert readable_text("no <b>markup</b> here") == "no &lt;b&gt;markup&lt;/b&gt; here"  # recorded text is escaped
