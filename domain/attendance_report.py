"""The attendance report: one row per client and care week in a date range, as a director, an auditor or a
billing service reads it (minutes delivered in person and by telehealth against the level's minimum)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from continuum.domain.attendance import care_week, first_care_week, week_of
from continuum.domain.episode import Episode
from continuum.domain.services import Modality, ServicesPolicy, SessionStatus

# The columns of a row, in the order the CSV writes them.
REPORT_COLUMNS = (
    "episode_id",
    "client_id",
    "care_week",
    "week_starts_at",
    "week_ends_at",
    "level",
    "in_person_minutes",
    "telehealth_minutes",
    "minimum_hours",
    "short_by_hours",
    "missed_excused",
    "missed_unexcused",
    "held",
    "in_progress",
    "policy_version",
)


@dataclass(frozen=True)
class AttendanceRow:
    """One client's care week: what was delivered, against what the episode's policy asked of its level."""

    episode_id: str
    client_id: str
    care_week: int
    week_starts_at: datetime
    week_ends_at: datetime
    level: str  # the levels the week was delivered at, joined by "+" when it spanned a change
    in_person_minutes: int
    telehealth_minutes: int
    minimum_hours: float | None  # None: no hourly minimum (a hold in the week, a 24-hour level)
    short_by_hours: float
    missed_excused: int
    missed_unexcused: int
    held: bool
    in_progress: bool  # the week has not ended yet: its figures may still grow
    policy_version: str  # the policy the episode was decided under, whose minimum the row reads


def report_rows(
    state: Episode,
    services: ServicesPolicy,
    policy_version: str,
    start: datetime,
    end: datetime,
    now: datetime,
    day: timedelta,
) -> list[AttendanceRow]:
    """The episode's care weeks that overlap [start, end), from the first week with a session to the week
    `now` (or the close) falls in; nothing before the first session, as in the episode's own read."""
    first = first_care_week(state, day)
    if first is None or end <= start:
        return []
    until = state.closed_at if state.closed_at is not None else now
    last = min(max(first, week_of(state, until, day)), week_of(state, end - timedelta(microseconds=1), day))
    rows = []
    for week in range(max(first, week_of(state, start, day)), last + 1):
        tally = care_week(state, services, week, now, day)
        if tally.ends_at <= start or tally.starts_at >= end:
            continue
        missed = [
            s
            for s in state.sessions
            if tally.starts_at <= s.starts_at < tally.ends_at and s.status is SessionStatus.MISSED
        ]
        rows.append(
            AttendanceRow(
                episode_id=state.episode_id,
                client_id=state.client_id,
                care_week=week,
                week_starts_at=tally.starts_at,
                week_ends_at=tally.ends_at,
                level="+".join(level.value for level in tally.levels),
                in_person_minutes=tally.attended_minutes - tally.telehealth_minutes,
                telehealth_minutes=tally.telehealth_minutes,
                minimum_hours=tally.minimum_hours,
                short_by_hours=round(tally.short_by_hours, 2),
                missed_excused=sum(1 for s in missed if s.excused),
                missed_unexcused=sum(1 for s in missed if not s.excused),
                held=tally.held,
                in_progress=tally.in_progress,
                policy_version=policy_version,
            )
        )
    return rows


def attended_minutes(state: Episode, start: datetime, end: datetime, modality: Modality | None = None) -> int:
    """Minutes attended in sessions that began in [start, end) (of one modality, or all)."""
    return sum(
        s.attended_minutes
        for s in state.sessions
        if s.status is SessionStatus.ATTENDED
        and start <= s.starts_at < end
        and (modality is None or s.modality is modality)
    )


LONGEST_REPORT_DAYS = 366


class ReportPeriodInvalid(ValueError):
    """A report's period that cannot be read; the message names the field (`from` or `to`)."""


def report_period(start: str, end: str) -> tuple[datetime, datetime]:
    """The report's period [start, end) from its two fields: dates (YYYY-MM-DD, whole days in UTC, `to`
    included) or instants with a time zone (`to` excluded). At most a year, `to` after `from`."""
    first = _bound("from", start, end_of_day=False)
    last = _bound("to", end, end_of_day=True)
    if last <= first:
        raise ReportPeriodInvalid(f"to: {end!r} is not after from ({start!r})")
    if last - first > timedelta(days=LONGEST_REPORT_DAYS):
        raise ReportPeriodInvalid(f"to: a report covers at most {LONGEST_REPORT_DAYS} days")
    return first, last


def _bound(field: str, value: str, *, end_of_day: bool) -> datetime:
    spelled = value.strip()
    try:
        if len(spelled) == 10:
            day = date.fromisoformat(spelled)
            instant = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1 if end_of_day else 0)
        else:
            instant = datetime.fromisoformat(spelled)
    except (ValueError, OverflowError):
        raise ReportPeriodInvalid(
            f"{field}: {value[:40]!r} is not a date (YYYY-MM-DD) or an instant with a time zone"
        ) from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ReportPeriodInvalid(f"{field}: {value[:40]!r} has no time zone (e.g. 2026-11-01T00:00:00Z)")
    if not 1900 <= instant.year <= 9998:
        raise ReportPeriodInvalid(f"{field}: {value[:40]!r} is not a plausible instant")
    return instant.astimezone(UTC)
