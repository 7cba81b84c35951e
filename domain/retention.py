"""What an episode's working state keeps: a year-long episode must not carry every test it ever had.

The event log and the `episodes` projection keep everything; the workflow decides on a working state
from which `retire` drops what no command can refer to any more. The rule, in care days (a demo's
compressed day counts as a day):

- A drug test leaves the working state once it was ordered more than `TEST_RECORD_OPEN_DAYS` care days
  ago, unless a pending step-up or the last step-up names it. Results and corrections for it are
  refused from then on, with a message that says so (a lab corrects a result within weeks, not months).
- Tests are ordered in sequence (`<episode>.T<n>`), so the state remembers only the highest number it
  has closed (`tests_closed_through`): a command naming a closed test is told it is closed, never that
  the test does not exist.

- A session leaves the working state once it began more than `SESSION_RECORD_OPEN_DAYS` care days ago
  (`sessions_closed_before` says since when): its care weeks are tallied by then, and a command naming it,
  or scheduling a session that early, is told its record is closed.

Consents, referrals and follow-ups stay: the policy's schedule bounds them (a few a year).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from continuum.domain.episode import Episode, Numbered
from continuum.domain.fold import replace

TEST_RECORD_OPEN_DAYS = 90
SESSION_RECORD_OPEN_DAYS = 56  # eight care weeks: more than the attendance rules look back


def test_number(test_id: str) -> int | None:
    """The sequence number in `<episode>.T<n>`, or None for an id of another shape."""
    _, dot, number = test_id.rpartition(f".{Numbered.TEST.value}")
    return int(number) if dot and number.isdigit() else None


def is_closed_test(state: Episode, test_id: str) -> bool:
    """Whether `test_id` names a test this episode ordered and has since retired from its working state."""
    if not test_id.startswith(f"{state.episode_id}.{Numbered.TEST.value}"):
        return False
    number = test_number(test_id)
    return number is not None and 0 < number <= state.tests_closed_through


def retire(state: Episode, at: datetime, day: timedelta) -> Episode:
    """The working state without the tests and sessions no command can refer to any more (the module's rule)."""
    return _retire_tests(_retire_sessions(state, at, day), at, day)


def _retire_sessions(state: Episode, at: datetime, day: timedelta) -> Episode:
    horizon = at - day * SESSION_RECORD_OPEN_DAYS
    if not state.sessions or min(s.starts_at for s in state.sessions[:8]) >= horizon:
        return state  # the common case: nothing old enough (sessions arrive roughly in order)
    kept = tuple(s for s in state.sessions if s.starts_at >= horizon)
    if len(kept) == len(state.sessions):
        return state
    return replace(state, sessions=kept, sessions_closed_before=horizon)


def _retire_tests(state: Episode, at: datetime, day: timedelta) -> Episode:
    horizon = at - day * TEST_RECORD_OPEN_DAYS
    if not state.tests or state.tests[0].ordered_at >= horizon:
        return state  # the common case, checked in constant time: nothing old enough to retire
    named = {r.test_id for r in (state.pending_step_up, state.last_step_up) if r is not None}
    kept = []
    closed = state.tests_closed_through
    for test in state.tests:
        if test.ordered_at < horizon and test.test_id not in named:
            closed = max(closed, test_number(test.test_id) or 0)
        else:
            kept.append(test)
    return replace(state, tests=tuple(kept), tests_closed_through=closed)
