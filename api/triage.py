"""What the dashboard shows a director to triage, in words: alerts grouped per client and sorted by urgency,
flags as badges by family, levels by name, instants and care days readable. Pure functions over the reads'
rows; `install(env)` makes them the templates' filters (templates/macros.html draws them)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jinja2 import Environment
from markupsafe import Markup, escape

from continuum.domain.codec import parse_instant
from continuum.domain.flags import SUBJECT_OF, Alert, Flag, FlagFamily
from continuum.domain.levels import LevelOfCare

LEVEL_NAMES: dict[LevelOfCare, str] = {
    LevelOfCare.AFTERCARE: "aftercare",
    LevelOfCare.OUTPATIENT: "outpatient",
    LevelOfCare.INTENSIVE_OUTPATIENT: "intensive outpatient (IOP)",
    LevelOfCare.PARTIAL_HOSPITALIZATION: "partial hospitalization (PHP)",
    LevelOfCare.RESIDENTIAL: "residential",
    LevelOfCare.WITHDRAWAL_MANAGEMENT: "withdrawal management",
}
FLAG_NAMES: dict[FlagFamily, str] = {
    FlagFamily.REVIEW_OVERDUE: "review overdue",
    FlagFamily.STEP_UP_REVIEW_OVERDUE: "step-up review overdue",
    FlagFamily.STEP_UP_ON_CORRECTED_RESULT: "step-up on a corrected result",
    FlagFamily.BUPRENORPHINE_ABSENT: "buprenorphine absent",
    FlagFamily.ANALYTE_ABSENT: "expected analyte absent",
    FlagFamily.SPECIMEN_TEMPERATURE: "specimen temperature",
    FlagFamily.RESULT_MISSING: "result missing",
    FlagFamily.LAB_NOT_NOTIFIED: "lab not notified",
    FlagFamily.REFERRAL_UNANSWERED: "referral unanswered",
    FlagFamily.REFERRAL_NOT_SENT: "referral not sent",
    FlagFamily.BELOW_MINIMUM_HOURS: "below minimum hours",
    FlagFamily.RE_ENGAGEMENT_REVIEW: "re-engagement review",
    FlagFamily.RE_ENGAGEMENT_REVIEW_OVERDUE: "re-engagement review overdue",
    FlagFamily.POSSIBLE_DROPOUT: "possible dropout",
    FlagFamily.PLAN_OVERDUE: "plan overdue",
    FlagFamily.AUTHORIZATION_EXPIRED: "beyond authorization",
    FlagFamily.LEVEL_UNAUTHORIZED: "level unauthorized",
    FlagFamily.AUTHORIZED_LEVEL_MISMATCH: "authorized level differs",
    FlagFamily.CONCURRENT_REVIEW_OVERDUE: "concurrent review overdue",
}
ALERT_LIMIT = 20  # groups a list shows on the overview; its own page shows them all


def level_name(level: str | LevelOfCare | None) -> str:
    """A level of care in words (`intensive outpatient (IOP)`); the one mapping the tables and charts use."""
    if not level:
        return "-"
    try:
        return LEVEL_NAMES[LevelOfCare(level)]
    except ValueError:
        return str(level).replace("_", " ")


@dataclass(frozen=True)
class Badge:
    """One family of an episode's flags, in words, with how many of that family it carries."""

    family: str
    label: str
    count: int
    subjects: tuple[str, ...]


def flag_badges(flags: Iterable[str]) -> list[Badge]:
    """An episode's flags as a few badges, one per family (in the order first raised), each with its count."""
    labels: dict[str, str] = {}
    subjects: dict[str, list[str]] = {}
    counts: Counter[str] = Counter()
    for spelling in flags:
        try:
            flag = Flag.parse(spelling)
        except ValueError:  # a family this release does not know: shown as spelled, never dropped
            family, _, subject = str(spelling).partition(":")
            labels.setdefault(family, family.replace("_", " "))
        else:
            family, subject = flag.family.value, flag.subject or ""
            labels.setdefault(family, FLAG_NAMES[flag.family])
        counts[family] += 1
        subjects.setdefault(family, []).extend([subject] if subject else [])
    return [Badge(family, labels[family], counts[family], tuple(subjects[family])) for family in counts]


@dataclass(frozen=True)
class AlertList:
    """One of the overview's alert lists: `overdue` lists are open now and sort by days overdue; the others are
    recent events and sort by how many the client had, then the newest. `subject` names each row's item."""

    key: str
    title: str
    overdue: bool
    subject: str | None = None


ALERT_LISTS = (
    AlertList(Alert.OVERDUE_REVIEWS, "Overdue reviews", overdue=True),
    AlertList(Alert.MISSING_RESULTS, "Missing results", overdue=True, subject=SUBJECT_OF[FlagFamily.RESULT_MISSING]),
    AlertList(Alert.OVERDUE_PLANS, "Overdue plans", overdue=True),
    AlertList(
        Alert.UNANSWERED_REFERRALS,
        "Unanswered referrals",
        overdue=True,
        subject=SUBJECT_OF[FlagFamily.REFERRAL_UNANSWERED],
    ),
    AlertList(
        Alert.BEYOND_AUTHORIZATION,
        "Stays beyond authorization",
        overdue=True,
        subject=SUBJECT_OF[FlagFamily.AUTHORIZATION_EXPIRED],
    ),
    AlertList(Alert.UNAUTHORIZED_LEVELS, "Levels without authorization", overdue=True),
    AlertList(
        Alert.OVERDUE_CONCURRENT_REVIEWS,
        "Overdue concurrent reviews",
        overdue=True,
        subject=SUBJECT_OF[FlagFamily.CONCURRENT_REVIEW_OVERDUE],
    ),
    AlertList("positives", "Positives", overdue=False, subject="test_id"),
    AlertList("step_ups", "Step-ups", overdue=False),
)
ALERT_LIST_OF = {alert.key: alert for alert in ALERT_LISTS}


@dataclass(frozen=True)
class AlertGroup:
    """One client's rows of one alert list: how many, the oldest due date missed (or the newest event), and
    the age of that in care days."""

    episode_id: str
    client_id: str
    level: str | None
    count: int
    subjects: tuple[str, ...]
    at: datetime | None  # the oldest due date missed (overdue lists), or the newest event (the others)
    days: float | None  # care days overdue, or care days ago
    details: tuple[str, ...]  # what each row says beyond its subject (substances, a move and its cause)


def _instant(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return parse_instant(value) if isinstance(value, str) and value else None


def _detail(row: Mapping[str, Any]) -> str:
    if row.get("to_level"):
        moved = f"{level_name(row.get('from_level'))} → {level_name(row['to_level'])}"
        return f"{moved} ({row['cause']})" if row.get("cause") else moved
    substances = row.get("substances") or []
    if row.get("result"):
        return f"{row['result']}: {', '.join(substances)}" if substances else str(row["result"])
    return ""


def alert_groups(
    alert: AlertList, rows: Iterable[Mapping[str, Any]], now: datetime, day: timedelta
) -> list[AlertGroup]:
    """One alert list's rows, one group per client (episode), the most urgent first."""
    by_episode: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_episode.setdefault(str(row["episode_id"]), []).append(row)
    groups = []
    for episode_id, found in by_episode.items():
        instants = [i for i in (_instant(r.get("due_at" if alert.overdue else "recorded_at")) for r in found) if i]
        at = (min if alert.overdue else max)(instants) if instants else None
        subjects = tuple(str(r[alert.subject]) for r in found if alert.subject and r.get(alert.subject))
        details = tuple(d for d in (_detail(r) for r in found) if d)
        days = (now - at) / day if at else None
        first = found[0]
        groups.append(
            AlertGroup(
                episode_id,
                str(first.get("client_id") or ""),
                first.get("level"),
                len(found),
                subjects,
                at,
                days,
                details,
            )
        )
    return sorted(groups, key=_urgency(alert))


def _urgency(alert: AlertList) -> Callable[[AlertGroup], tuple[float, float, str]]:
    def overdue(group: AlertGroup) -> tuple[float, float, str]:  # the longest overdue, then the most items
        return (-(group.days if group.days is not None else -1e9), -group.count, group.episode_id)

    def recent(group: AlertGroup) -> tuple[float, float, str]:  # the most events, then the newest
        return (-group.count, group.days if group.days is not None else 1e9, group.episode_id)

    return overdue if alert.overdue else recent


def all_alert_groups(found: Mapping[str, Any], now: datetime, day: timedelta) -> dict[str, list[AlertGroup]]:
    """Every alert list of the reads' `alerts`, grouped and sorted."""
    return {alert.key: alert_groups(alert, found.get(alert.key, []), now, day) for alert in ALERT_LISTS}


def care_days(value: float | None) -> str:
    """An age in care days in words: `12 d`, `0.4 d`, `-`."""
    if value is None:
        return "-"
    return f"{value:.0f} d" if abs(value) >= 10 else f"{value:.1f} d"


def readable_time(value: object) -> str:
    """An instant as a director reads it, to the minute, in UTC (the page's script shows it in local time)."""
    at = _instant(value)
    return at.astimezone(UTC).strftime("%-d %b %Y %H:%M UTC") if at else "-"


def iso_time(value: object) -> str:
    """An instant for a `<time datetime=...>` attribute (seconds, no microseconds)."""
    at = _instant(value)
    return at.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z") if at else ""


_INSTANT_IN_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})")


def readable_text(text: str) -> Markup:
    """A recorded sentence (escaped) with each ISO instant in it, such as a reason naming a due date, made a
    readable `<time>` (the page's script shows it in local time, as every other instant)."""
    return Markup(
        _INSTANT_IN_TEXT.sub(
            lambda found: f'<time datetime="{iso_time(found.group())}">{readable_time(found.group())}</time>',
            str(escape(text)),
        )
    )


_TICK_STEPS = (1, 2, 7, 14, 30, 60, 90, 180, 365, 730)


def care_day_ticks(span: timedelta, day: timedelta, most: int = 10) -> list[tuple[float, str]]:
    """The timeline's axis: (fraction of the span, `day N`) at a step of whole care days, at most `most` ticks;
    day 1 is the day the episode opened."""
    days = max(span / day, 1.0)
    step = next((s for s in _TICK_STEPS if days / s <= most), _TICK_STEPS[-1])
    return [(offset / days, f"day {offset + 1}") for offset in range(0, int(days) + 1, step)]


def install(env: Environment) -> None:
    """The helpers as Jinja filters and globals, so every template names a level or a time one way."""
    env.filters.update(
        level_name=level_name,
        flag_badges=flag_badges,
        care_days=care_days,
        readable_time=readable_time,
        readable_text=readable_text,
        iso_time=iso_time,
    )
    env.globals.update(alert_lists=ALERT_LISTS, alert_limit=ALERT_LIMIT)
