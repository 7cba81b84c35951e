"""Attendance: the weekly dose of treatment (hours delivered per care week against the level's minimum), the
decisions on sessions, and non-attendance as a clinical signal (a flag and a re-engagement review for the
clinician, never a discharge).

A care week is 7 care-clock days from the placement (the first stay). A week with a hold in it has no minimum:
the hold pauses the expectation, so it is skipped, never prorated. A week that spans levels takes the lowest
minimum among them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from continuum.domain.commands import (
    CancelSession,
    CloseCareWeek,
    Command,
    EscalateReEngagementReview,
    FlagPossibleDropout,
    RecordAttendance,
    RecordMissedSession,
    RecordReEngagementReview,
    ScheduleSession,
)
from continuum.domain.episode import Episode, EpisodeStatus
from continuum.domain.errors import CommandInvalid, CommandRejected
from continuum.domain.events import (
    CareWeekClosed,
    DomainEvent,
    FlagCleared,
    FlagRaised,
    ReEngagementReviewed,
    ReEngagementReviewEscalated,
    ReEngagementReviewRequested,
    SessionAttended,
    SessionCancelled,
    SessionMissed,
    SessionScheduled,
)
from continuum.domain.flags import Flag, FlagFamily
from continuum.domain.ids import staff_id
from continuum.domain.levels import LevelOfCare
from continuum.domain.policy import Policy
from continuum.domain.services import LONGEST_SESSION_MINUTES, Modality, ServicesPolicy, Session, SessionStatus
from continuum.domain.values import text_problem

WEEK_DAYS = 7
RE_ENGAGEMENT = Flag(FlagFamily.RE_ENGAGEMENT_REVIEW)
RE_ENGAGEMENT_OVERDUE = Flag(FlagFamily.RE_ENGAGEMENT_REVIEW_OVERDUE)
POSSIBLE_DROPOUT = Flag(FlagFamily.POSSIBLE_DROPOUT)
AttendanceDue = CloseCareWeek | FlagPossibleDropout | EscalateReEngagementReview


def below_minimum_flag(week: int) -> Flag:
    return Flag(FlagFamily.BELOW_MINIMUM_HOURS, f"week-{week}")


@dataclass(frozen=True)
class CareWeek:
    """One care week's dose: minutes delivered (telehealth among them, shown apart) against the minimum."""

    week: int
    starts_at: datetime
    ends_at: datetime
    levels: tuple[LevelOfCare, ...]
    attended_minutes: int
    telehealth_minutes: int
    minimum_hours: float | None  # None: no minimum (a hold, a 24-hour level, no hourly expectation)
    expected_hours: float | None
    held: bool
    sessions_missed: int
    in_progress: bool
    hours: float  # attended, telehealth included
    telehealth_hours: float
    short_by_hours: float  # below the minimum (0 when it met it, or has none)


def week_bounds(state: Episode, week: int, day: timedelta) -> tuple[datetime, datetime]:
    if state.placed_at is None:
        raise ValueError("an episode has care weeks from its placement")
    start = state.placed_at + day * WEEK_DAYS * (week - 1)
    return start, start + day * WEEK_DAYS


def week_of(state: Episode, at: datetime, day: timedelta) -> int:
    """The care week (1-based) that `at` falls in; 0 before the placement."""
    if state.placed_at is None or at < state.placed_at:
        return 0
    return int((at - state.placed_at) / (day * WEEK_DAYS)) + 1


def care_week(state: Episode, services: ServicesPolicy, week: int, now: datetime, day: timedelta) -> CareWeek:
    """The dose of care week `week` as the state holds it at `now`."""
    start, end = week_bounds(state, week, day)
    inside = [s for s in state.sessions if start <= s.starts_at < end]
    attended = [s for s in inside if s.status is SessionStatus.ATTENDED]
    levels = _levels_during(state, start, end)
    held = any(h.start < end and (h.end is None or h.end > start) for h in state.hold_spells)
    hours = [services.hours(level) for level in levels]
    hourly = bool(hours) and not any(h.around_the_clock for h in hours)
    minutes = sum(s.attended_minutes for s in attended)
    telehealth = sum(s.attended_minutes for s in attended if s.modality is Modality.TELEHEALTH)
    minimum = min(h.minimum for h in hours) if hourly and not held else None
    return CareWeek(
        week=week,
        starts_at=start,
        ends_at=end,
        levels=levels,
        attended_minutes=minutes,
        telehealth_minutes=telehealth,
        minimum_hours=minimum,
        expected_hours=min(h.expected for h in hours) if hourly and not held else None,
        held=held,
        sessions_missed=sum(1 for s in inside if s.status is SessionStatus.MISSED),
        in_progress=now < end,
        hours=minutes / 60,
        telehealth_hours=telehealth / 60,
        short_by_hours=max(0.0, minimum - minutes / 60) if minimum is not None else 0.0,
    )


def care_weeks(state: Episode, services: ServicesPolicy, now: datetime, day: timedelta) -> list[CareWeek]:
    """Every care week from the first with a session to the one `now` (or the close) falls in."""
    first = _first_week(state, day)
    if first is None:
        return []
    until = state.closed_at if state.closed_at is not None else now
    last = max(first, week_of(state, until, day))
    return [care_week(state, services, week, now, day) for week in range(first, last + 1)]


@dataclass(frozen=True)
class ExpectationMet:
    """An optional expectation of the current level (one family session a month in IOP) and whether the
    sessions attended in its last `every_days` meet it."""

    kind: str
    at_least: int
    every_days: float
    attended: int
    met: bool


@dataclass(frozen=True)
class Attendance:
    """What the episode's read shows of its treatment services."""

    weeks: tuple[CareWeek, ...]
    weeks_below_minimum: tuple[int, ...]  # closed weeks that fell short
    sessions_scheduled: int
    sessions_attended: int
    sessions_missed: int
    unexcused_misses_in_a_row: int
    last_attended_at: datetime | None
    expectations: tuple[ExpectationMet, ...]


def attendance_of(state: Episode, services: ServicesPolicy, now: datetime, day: timedelta) -> Attendance:
    weeks = care_weeks(state, services, now, day)
    statuses = [s.status for s in state.sessions]
    return Attendance(
        weeks=tuple(weeks),
        weeks_below_minimum=tuple(w.week for w in weeks if not w.in_progress and w.short_by_hours > 0),
        sessions_scheduled=len(statuses),
        sessions_attended=statuses.count(SessionStatus.ATTENDED),
        sessions_missed=statuses.count(SessionStatus.MISSED),
        unexcused_misses_in_a_row=state.unexcused_misses_in_a_row,
        last_attended_at=state.last_attended_at,
        expectations=tuple(_expectations_met(state, services, now, day)),
    )


def _expectations_met(state: Episode, services: ServicesPolicy, now: datetime, day: timedelta) -> list[ExpectationMet]:
    found = []
    for expectation in services.expectations:
        if expectation.level is not state.level:
            continue
        since = now - day * expectation.every_days
        attended = sum(
            1
            for s in state.sessions
            if s.kind == expectation.kind and s.status is SessionStatus.ATTENDED and since <= s.starts_at <= now
        )
        found.append(
            ExpectationMet(
                expectation.kind,
                expectation.at_least,
                expectation.every_days,
                attended,
                attended >= expectation.at_least,
            )
        )
    return found


def first_care_week(state: Episode, day: timedelta) -> int | None:
    """The first care week with a session (the weeks an attendance read shows start there); None without one."""
    return _first_week(state, day)


def _first_week(state: Episode, day: timedelta) -> int | None:
    if state.placed_at is None or state.attendance_since is None:
        return None  # no session on record (retired sessions leave `attendance_since` behind)
    starts = [state.attendance_since, *(s.starts_at for s in state.sessions)]
    return max(1, min(week_of(state, at, day) for at in starts))


def _levels_during(state: Episode, start: datetime, end: datetime) -> tuple[LevelOfCare, ...]:
    spells = state.level_spells
    found = []
    for index, spell in enumerate(spells):
        until = spells[index + 1].since if index + 1 < len(spells) else state.closed_at
        if spell.since < end and (until is None or until > start):
            found.append(spell.level)
    return tuple(dict.fromkeys(found))


# -- the clock: care weeks to tally, a possible drop-out --------------------------------------------------


def attendance_dues(state: Episode, policy: Policy, day: timedelta) -> list[tuple[AttendanceDue, datetime]]:
    """What the attendance clock has due: the next care week's tally, the drop-out flag. Nothing without
    `[services]` or before the first session (so episodes that record none keep their command sequence)."""
    services = policy.services
    first = _first_week(state, day)
    if services is None or first is None or state.status is not EpisodeStatus.ACTIVE:
        return []
    week = max(first, state.weeks_closed + 1)
    dues: list[tuple[AttendanceDue, datetime]] = [(CloseCareWeek(week), week_bounds(state, week, day)[1])]
    if POSSIBLE_DROPOUT not in state.flags:
        dues.append((FlagPossibleDropout(), _dropout_due(state, services, day)))
    if state.re_engagement_due_at is not None and not state.re_engagement_escalated:
        escalate_at = state.re_engagement_due_at + day * policy.review_escalate_after_days
        dues.append((EscalateReEngagementReview(), escalate_at))
    return dues


def _open_review(
    state: Episode, services: ServicesPolicy, reason: str, version: str, at: datetime, day: timedelta
) -> list[DomainEvent]:
    """A re-engagement review for the clinician, due in the policy's days (escalated like a completion review)."""
    if RE_ENGAGEMENT in state.flags:
        return []
    due_at = at + day * services.re_engagement_due_days
    return [
        FlagRaised(state.episode_id, at, RE_ENGAGEMENT, reason),
        ReEngagementReviewRequested(state.episode_id, at, due_at, reason, version),
    ]


def _dropout_due(state: Episode, services: ServicesPolicy, day: timedelta) -> datetime:
    first = min((s.starts_at for s in state.sessions), default=state.attendance_since or state.opened_at)
    since = [state.last_attended_at or first]
    since += [h.end for h in state.hold_spells if h.end is not None]  # a hold restarts the count
    return max(since) + day * services.dropout_after_days


# -- decisions ----------------------------------------------------------------------------------------------


def admit_attendance(command: Command) -> None:
    """A note that could not be on record is refused where the command arrives."""
    if isinstance(command, RecordReEngagementReview) and text_problem(command.note) is not None:
        raise CommandRejected("a note must not contain control characters other than newline and tab")


def decide_attendance(
    state: Episode, command: Command, policy: Policy, at: datetime, day: timedelta
) -> list[DomainEvent]:
    services = policy.services
    if services is None:
        raise CommandRejected("this episode's policy has no [services]: it records no sessions")
    match command:
        case ScheduleSession():
            return _schedule(state, command, services, at)
        case RecordAttendance():
            return _attended(state, command, at)
        case RecordMissedSession():
            return _missed(state, command, services, policy.version, at, day)
        case CancelSession():
            session = _known(state, command.session_id)
            staff_id(command.cancelled_by)
            if session.status is SessionStatus.CANCELLED and session.reason == command.reason.value:
                return []
            _still_scheduled(session)
            return [
                SessionCancelled(state.episode_id, at, session.session_id, command.reason.value, command.cancelled_by)
            ]
        case RecordReEngagementReview():
            staff_id(command.clinician)
            if RE_ENGAGEMENT not in state.flags and POSSIBLE_DROPOUT not in state.flags:
                raise CommandRejected("no re-engagement review is open")
            reviewed = ReEngagementReviewed(state.episode_id, at, command.clinician, command.note)
            open_flags = (RE_ENGAGEMENT, RE_ENGAGEMENT_OVERDUE)
            return [reviewed, *[FlagCleared(state.episode_id, at, f) for f in open_flags if f in state.flags]]
        case EscalateReEngagementReview():
            due = state.re_engagement_due_at
            if due is None or state.re_engagement_escalated or at < due + day * policy.review_escalate_after_days:
                raise CommandRejected("no re-engagement review is overdue")
            reason = f"the re-engagement review was due {_when(due)}: the clinical director is alerted"
            return [
                ReEngagementReviewEscalated(state.episode_id, at, due, policy.version),
                FlagRaised(state.episode_id, at, RE_ENGAGEMENT_OVERDUE, reason),
            ]
        case CloseCareWeek():
            return _close_week(state, command.week, services, policy.version, at, day)
        case FlagPossibleDropout():
            if (
                POSSIBLE_DROPOUT in state.flags
                or _first_week(state, day) is None
                or at < _dropout_due(state, services, day)
            ):
                raise CommandRejected("the client is not overdue for a session")
            days = services.dropout_after_days
            reason = (
                f"no session attended for {days:g} days: possibly dropped out (closing stays a clinician's decision)"
            )
            return [FlagRaised(state.episode_id, at, POSSIBLE_DROPOUT, reason)]
    raise CommandRejected(f"{type(command).__name__} is not an attendance command")


def _schedule(state: Episode, command: ScheduleSession, services: ServicesPolicy, at: datetime) -> list[DomainEvent]:
    staff_id(command.scheduled_by)
    staff_id(command.session_id)
    if command.kind not in services.kinds:
        raise CommandInvalid(
            f"kind: {command.kind!r} is not a session kind of this program ({', '.join(services.kinds)})"
        )
    if not 1 <= command.minutes <= LONGEST_SESSION_MINUTES:
        raise CommandInvalid(f"minutes: a session lasts 1-{LONGEST_SESSION_MINUTES} minutes, not {command.minutes}")
    if command.starts_at < state.opened_at:
        raise CommandInvalid(
            f"starts_at: {_when(command.starts_at)} is before the episode opened ({_when(state.opened_at)})"
        )
    closed = state.sessions_closed_before
    if closed is not None and command.starts_at < closed:
        raise CommandRejected(f"sessions before {_when(closed)} are closed to new records")
    existing = state.session(command.session_id)
    if existing is not None:
        if (existing.kind, existing.starts_at, existing.minutes) == (command.kind, command.starts_at, command.minutes):
            return []  # the same session again: already on record
        raise CommandRejected(f"session {command.session_id} was already scheduled, as another session")
    return [
        SessionScheduled(
            state.episode_id,
            at,
            command.session_id,
            command.kind,
            command.starts_at,
            command.minutes,
            state.level,
            command.scheduled_by,
        )
    ]


def _attended(state: Episode, command: RecordAttendance, at: datetime) -> list[DomainEvent]:
    staff_id(command.recorded_by)
    session = _known(state, command.session_id)
    if session.status is SessionStatus.ATTENDED and (session.attended_minutes, session.modality) == (
        command.minutes,
        command.modality,
    ):
        return []
    if not 1 <= command.minutes <= session.minutes:
        raise CommandInvalid(f"minutes: {command.minutes} is not within the session's 1-{session.minutes} minutes")
    _started(session, at)
    _still_scheduled(session)
    events: list[DomainEvent] = [
        SessionAttended(
            state.episode_id, at, session.session_id, command.minutes, command.modality, command.recorded_by
        )
    ]
    if POSSIBLE_DROPOUT in state.flags:
        events.append(FlagCleared(state.episode_id, at, POSSIBLE_DROPOUT))
    return events


def _missed(
    state: Episode, command: RecordMissedSession, services: ServicesPolicy, version: str, at: datetime, day: timedelta
) -> list[DomainEvent]:
    staff_id(command.recorded_by)
    session = _known(state, command.session_id)
    if session.status is SessionStatus.MISSED and (session.excused, session.reason) == (
        command.excused,
        command.reason.value,
    ):
        return []
    _started(session, at)
    _still_scheduled(session)
    events: list[DomainEvent] = [
        SessionMissed(
            state.episode_id, at, session.session_id, command.excused, command.reason.value, command.recorded_by
        )
    ]
    in_a_row = state.unexcused_misses_in_a_row + (0 if command.excused else 1)
    if in_a_row >= services.unexcused_misses_in_a_row:
        reason = f"{in_a_row} unexcused misses in a row: a re-engagement review is open for the clinician"
        events += _open_review(state, services, reason, version, at, day)
    return events


def _close_week(
    state: Episode, week: int, services: ServicesPolicy, version: str, at: datetime, day: timedelta
) -> list[DomainEvent]:
    first = _first_week(state, day)
    if first is None or week != max(first, state.weeks_closed + 1) or at < week_bounds(state, week, day)[1]:
        raise CommandRejected(f"care week {week} is not the next to close")
    tally = care_week(state, services, week, at, day)
    eid = state.episode_id
    events: list[DomainEvent] = [
        CareWeekClosed(
            eid,
            at,
            week,
            tally.starts_at,
            tally.ends_at,
            tally.attended_minutes,
            tally.telehealth_minutes,
            tally.minimum_hours,
            tally.expected_hours,
            version,
        )
    ]
    if tally.short_by_hours > 0:
        reason = (
            f"care week {week}: {tally.hours:.1f} h delivered of the {tally.minimum_hours:g} h minimum, "
            f"{tally.short_by_hours:.1f} h short"
        )
        events.append(FlagRaised(eid, at, below_minimum_flag(week), reason))
    low = _low_attendance(state, services, week, at, day)
    if low is not None:
        events += _open_review(state, services, low, version, at, day)
    return events


def _low_attendance(state: Episode, services: ServicesPolicy, week: int, at: datetime, day: timedelta) -> str | None:
    """Why the last weeks delivered too little of what was expected, or None (a week without an expectation
    in the span, such as one with a hold, means no judgement)."""
    span = services.low_attendance_weeks
    if week - span + 1 < (_first_week(state, day) or week):
        return None
    weeks = [care_week(state, services, w, at, day) for w in range(week - span + 1, week + 1)]
    expected = [w.expected_hours for w in weeks]
    if any(e is None for e in expected) or sum(e or 0 for e in expected) == 0:
        return None
    delivered, wanted = sum(w.hours for w in weeks), sum(e or 0 for e in expected)
    if delivered >= services.low_attendance_share * wanted:
        return None
    return (
        f"{delivered:.1f} h of {wanted:g} h expected over {span} care weeks"
        f" (under {services.low_attendance_share:.0%}): a re-engagement review is open for the clinician"
    )


def _known(state: Episode, session_id: str) -> Session:
    session = state.session(session_id)
    if session is None:
        closed = state.sessions_closed_before
        if closed is not None:
            raise CommandRejected(
                f"session {session_id} was not scheduled, or began before {_when(closed)} and is closed to new records"
            )
        raise CommandRejected(f"session {session_id} was not scheduled")
    return session


def _still_scheduled(session: Session) -> None:
    if session.status is not SessionStatus.SCHEDULED:
        raise CommandRejected(f"session {session.session_id} was already recorded as {session.status.value}")


def _started(session: Session, at: datetime) -> None:
    if at < session.starts_at:
        raise CommandRejected(f"session {session.session_id} starts at {_when(session.starts_at)}; it has not begun")


def _when(instant: datetime) -> str:
    return instant.isoformat()
