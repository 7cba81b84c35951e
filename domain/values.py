"""What a value must be to go on record: an instant in a plausible window, text every layer can carry.

One definition, used by the API's request schemas (a 422 naming the field) and by the domain's admission
rules (`domain.decisions.admit`), so both refuse the same values. An instant outside the window, or text
with a NUL or another control character, cannot survive every layer (JSON, Temporal payloads, the hash
encoding, PostgreSQL text, jsonb and timestamptz), or makes no clinical sense.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

EARLIEST_INSTANT = datetime(1900, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(days=1)  # how far ahead of ours another system's clock may run
# Control characters (C0, DEL, C1); newline and tab are allowed where text may span lines.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_ON_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # half of a UTF-16 pair: UTF-8 (and PostgreSQL) cannot hold it


def latest_instant(now: datetime, ahead: timedelta = CLOCK_SKEW) -> datetime:
    """The latest plausible instant when it is `now`, given that another clock may run `ahead` of ours."""
    return now + ahead


def instant_problem(value: datetime, now: datetime, ahead: timedelta = CLOCK_SKEW) -> str | None:
    """Why `value` cannot be recorded as an instant when it is `now` (None if it can)."""
    if value.tzinfo is None or value.utcoffset() is None:
        return "must carry a time zone (Z or an offset such as +02:00)"
    if not EARLIEST_INSTANT <= value <= latest_instant(now, ahead):
        return f"must lie between {EARLIEST_INSTANT:%Y-%m-%dT%H:%M:%SZ} and {_describe(ahead)} from now"
    return None


def text_problem(value: str, *, multiline: bool = True) -> str | None:
    """Why `value` cannot be recorded as text (None if it can): no NUL or other control character
    (newline and tab are allowed in `multiline` text), and no unpaired surrogate."""
    if (_CONTROL if multiline else _CONTROL_ON_ONE_LINE).search(value) is not None:
        return (
            "must not contain control characters other than newline and tab"
            if multiline
            else ("must be one line without control characters")
        )
    if _SURROGATE.search(value) is not None:
        return "must be valid Unicode text (it contains an unpaired surrogate)"
    return None


def _describe(ahead: timedelta) -> str:
    return "one day" if ahead == timedelta(days=1) else f"{ahead.days} days"
