"""Treatment services: the kinds of session a program runs, the hours a week each level of care is to deliver
(policy `[services]`), and the sessions an episode records. Values and their policy only; the weekly dose and
the decisions on sessions are in `domain.attendance`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeGuard

from continuum.domain.errors import PolicyError
from continuum.domain.levels import LevelOfCare

STANDARD_KINDS = ("individual", "group", "family", "education", "medication_management")
KIND = re.compile(r"[a-z][a-z_]{0,39}")
LONGEST_SESSION_MINUTES = 720  # a session is at most a 12-hour day


class Modality(StrEnum):
    IN_PERSON = "in_person"
    TELEHEALTH = "telehealth"


class SessionStatus(StrEnum):
    SCHEDULED = "scheduled"
    ATTENDED = "attended"
    MISSED = "missed"
    CANCELLED = "cancelled"  # by the program: it counts neither for nor against the client


class MissReason(StrEnum):
    """Why a client missed a session (the coded reasons an EHR sends)."""

    ILLNESS = "illness"
    TRANSPORTATION = "transportation"
    CHILDCARE = "childcare"
    WORK = "work"
    HOSPITALISED = "hospitalised"
    INCARCERATED = "incarcerated"
    NO_SHOW = "no_show"  # no reason given
    OTHER = "other"


class CancelReason(StrEnum):
    """Why the program cancelled a session."""

    STAFF_UNAVAILABLE = "staff_unavailable"
    FACILITY_CLOSED = "facility_closed"
    HOLIDAY = "holiday"
    WEATHER = "weather"
    RESCHEDULED = "rescheduled"
    OTHER = "other"


@dataclass(frozen=True)
class Session:
    """One scheduled session of treatment and what became of it."""

    session_id: str
    kind: str
    starts_at: datetime
    minutes: int  # its scheduled length
    level: LevelOfCare | None  # the level of care it was scheduled at
    status: SessionStatus = SessionStatus.SCHEDULED
    attended_minutes: int = 0
    modality: Modality | None = None
    excused: bool | None = None  # for a miss
    reason: str | None = None  # a miss's or a cancellation's coded reason


@dataclass(frozen=True)
class WeeklyHours:
    """What one level is to deliver each care week: a minimum and the hours expected; `around_the_clock` for a
    24-hour level (residential, withdrawal management), which has no hourly minimum."""

    minimum: float = 0.0
    expected: float = 0.0
    around_the_clock: bool = False


@dataclass(frozen=True)
class Expectation:
    """An optional expectation: at least `at_least` sessions of `kind` at `level` every `every_days` days."""

    level: LevelOfCare
    kind: str
    at_least: int
    every_days: float


@dataclass(frozen=True)
class ServicesPolicy:
    kinds: tuple[str, ...]
    hours_per_week: dict[LevelOfCare, WeeklyHours]
    expectations: tuple[Expectation, ...]
    unexcused_misses_in_a_row: int  # this many unexcused misses in a row open a re-engagement review
    low_attendance_share: float  # under this share of the expected hours ...
    low_attendance_weeks: int  # ... over this many care weeks opens one too
    dropout_after_days: float  # no attendance for this long: flagged as possibly dropped out
    re_engagement_due_days: float  # a re-engagement review is due this long after it opens

    def hours(self, level: LevelOfCare) -> WeeklyHours:
        return self.hours_per_week.get(level, WeeklyHours())


def read_services(raw: dict[str, Any]) -> ServicesPolicy | None:
    """The `[services]` table of a parsed policy, validated, errors naming the key; None if it has none (a
    policy from before services, which episodes started then keep: no attendance rules)."""
    if "services" not in raw:
        return None
    table = raw["services"]
    if not isinstance(table, dict):
        raise PolicyError("policy key services must be a table")
    kinds = table.get("kinds")
    if not isinstance(kinds, list) or not kinds or not all(isinstance(k, str) and KIND.fullmatch(k) for k in kinds):
        raise PolicyError("policy key services.kinds must list session kinds (lower-case letters and _)")
    if len(set(kinds)) != len(kinds):
        raise PolicyError("policy key services.kinds names a kind twice")
    return ServicesPolicy(
        kinds=tuple(kinds),
        hours_per_week=_hours(table.get("hours_per_week")),
        expectations=_expectations(table.get("expectations", []), frozenset(kinds)),
        unexcused_misses_in_a_row=_whole(table, "unexcused_misses_in_a_row"),
        low_attendance_share=_share(table, "low_attendance_share"),
        low_attendance_weeks=_whole(table, "low_attendance_weeks"),
        dropout_after_days=_positive(table, "dropout_after_days", "number of days"),
        re_engagement_due_days=_positive(table, "re_engagement_due_within_days", "number of days"),
    )


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive(table: dict[str, Any], name: str, what: str) -> float:
    value = table.get(name)
    if not _number(value) or value <= 0:
        raise PolicyError(f"policy key services.{name} must be a positive {what}, not {value!r}")
    return float(value)


def _whole(table: dict[str, Any], name: str) -> int:
    value = table.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PolicyError(f"policy key services.{name} must be a whole number, at least 1, not {value!r}")
    return value


def _share(table: dict[str, Any], name: str) -> float:
    value = table.get(name)
    if not _number(value) or not 0 < value <= 1:
        raise PolicyError(f"policy key services.{name} must be a share between 0 and 1, not {value!r}")
    return float(value)


def _level(key: str, name: object) -> LevelOfCare:
    try:
        return LevelOfCare(str(name))
    except ValueError:
        raise PolicyError(f"policy key {key}: {name!r} is not a level of care") from None


def _hours(table: object) -> dict[LevelOfCare, WeeklyHours]:
    if not isinstance(table, dict):
        raise PolicyError("policy key services.hours_per_week must be a table of level = { minimum, expected }")
    hours: dict[LevelOfCare, WeeklyHours] = {}
    for name, entry in table.items():
        key = f"services.hours_per_week.{name}"
        level = _level(key, name)
        if not isinstance(entry, dict):
            raise PolicyError(
                f"policy key {key} must be {{ minimum = h, expected = h }} or {{ around_the_clock = true }}"
            )
        if entry.get("around_the_clock") is True:
            if set(entry) != {"around_the_clock"}:
                raise PolicyError(f"policy key {key}: a 24-hour level has no hourly minimum or expectation")
            hours[level] = WeeklyHours(around_the_clock=True)
            continue
        minimum, expected = entry.get("minimum"), entry.get("expected")
        if set(entry) != {"minimum", "expected"} or not _number(minimum) or not _number(expected):
            raise PolicyError(f"policy key {key} must give minimum and expected hours (numbers)")
        if not 0 <= minimum <= expected <= 168:
            raise PolicyError(f"policy key {key}: hours must satisfy 0 <= minimum <= expected <= 168")
        hours[level] = WeeklyHours(float(minimum), float(expected))
    return hours


def _expectations(items: object, kinds: frozenset[str]) -> tuple[Expectation, ...]:
    if not isinstance(items, list):
        raise PolicyError("policy key services.expectations must be an array of tables")
    found = []
    for index, item in enumerate(items):
        key = f"services.expectations[{index}]"
        if not isinstance(item, dict):
            raise PolicyError(f"policy key {key} must be a table with level, kind, at_least and every_days")
        if item.get("kind") not in kinds:
            raise PolicyError(f"policy key {key}.kind must be one of services.kinds, not {item.get('kind')!r}")
        at_least, every = item.get("at_least"), item.get("every_days")
        if isinstance(at_least, bool) or not isinstance(at_least, int) or at_least < 1:
            raise PolicyError(f"policy key {key}.at_least must be a whole number, at least 1")
        if not _number(every) or every <= 0:
            raise PolicyError(f"policy key {key}.every_days must be a positive number of days")
        found.append(Expectation(_level(f"{key}.level", item.get("level")), item["kind"], at_least, float(every)))
    return tuple(found)
