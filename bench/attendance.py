"""The attendance report's seed for `bench reads`: episodes with a year of sessions, as the projection holds them.

Episodes open evenly over a year and spend 13 care weeks (91 days) at one level (intensive outpatient 60 %,
partial hospitalization 25 %, outpatient 15 %), with the level's sessions on their days (IOP three 3-hour
blocks a week, PHP five 4-hour days, outpatient one hour); 80 % attended (one in six of them by telehealth),
the rest missed, excused or not. Each episode's log holds its opening and its placement (which names the
policy version the report judges it by); the projection row holds the state the report reads.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg

from bench.seed import seed_events
from continuum.domain.codec import format_instant
from continuum.domain.events import DomainEvent, EpisodeOpened, PlacementDecided
from continuum.domain.ids import ClientId, EpisodeId
from continuum.domain.levels import LevelOfCare
from continuum.eventlog.records import EventMetadata

YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
STAY = timedelta(days=91)
WEEK = timedelta(days=7)
# level -> (session minutes, session days of each care week)
PROGRAMS = {
    LevelOfCare.INTENSIVE_OUTPATIENT: (180, (0, 2, 4)),
    LevelOfCare.PARTIAL_HOSPITALIZATION: (240, (0, 1, 2, 3, 4)),
    LevelOfCare.OUTPATIENT: (60, (1,)),
}
LEVELS = list(PROGRAMS)
LEVEL_WEIGHTS = [60, 25, 15]


def attendance_id(n: int) -> str:
    return f"AT-{n:07d}"


def seed_attendance(conninfo: str, episodes: int, policy_version: str, policy_text: str, now: datetime) -> None:
    """`episodes` episodes with their sessions: two events each in the log, a row each in the projection."""
    chunk = 5000
    for first in range(0, episodes, chunk):
        numbers = range(first, min(first + chunk, episodes))
        seed_events(conninfo, _events(numbers, episodes, policy_version))
        _copy_rows(conninfo, numbers, episodes, now)
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "INSERT INTO policies (version, policy_text) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (policy_version, policy_text),
        )
        conn.commit()


def _opened_at(n: int, episodes: int) -> datetime:
    return YEAR_START + timedelta(days=365) * n / episodes


def _level(n: int) -> LevelOfCare:
    return random.Random(n).choices(LEVELS, weights=LEVEL_WEIGHTS)[0]


def _events(numbers: range, episodes: int, version: str) -> Iterator[tuple[str, int, DomainEvent, EventMetadata]]:
    meta = EventMetadata(actor="service:bench")
    for n in numbers:
        eid, at = EpisodeId(attendance_id(n)), _opened_at(n, episodes)
        yield eid, 1, EpisodeOpened(eid, at, ClientId(f"client-at-{n}")), meta
        yield eid, 2, PlacementDecided(eid, at, _level(n), None, (), version), meta


def _copy_rows(conninfo: str, numbers: range, episodes: int, now: datetime) -> None:
    with (
        psycopg.connect(conninfo) as conn,
        conn.cursor().copy(
            "COPY episodes (episode_id, client_id, status, status_since, level, level_since, flags, opened_at,"
            " closed_at, version, last_position, state) FROM STDIN"
        ) as copy,
    ):
        for n in numbers:
            opened, level = _opened_at(n, episodes), _level(n)
            closed = opened + STAY if opened + STAY < now else None
            status = "closed" if closed else "active"
            state = {
                "episode_id": attendance_id(n),
                "client_id": f"client-at-{n}",
                "status": status,
                "opened_at": format_instant(opened),
                "status_since": format_instant(closed or opened),
                "placed_at": format_instant(opened),
                "closed_at": format_instant(closed) if closed else None,
                "level": level.value,
                "level_since": format_instant(opened),
                "attendance_since": format_instant(opened),
                "level_spells": [{"level": level.value, "since": format_instant(opened)}],
                "hold_spells": [],
                "sessions": _sessions(n, opened, level, min(now, closed or now)),
            }
            row: tuple[object, ...] = (
                attendance_id(n),
                state["client_id"],
                status,
                closed or opened,
                level.value,
                opened,
                [],
                opened,
            )
            copy.write_row((*row, closed, 2, 0, json.dumps(state)))


def _sessions(n: int, opened: datetime, level: LevelOfCare, until: datetime) -> list[dict[str, object]]:
    rng = random.Random(f"sessions-{n}")
    minutes, days = PROGRAMS[level]
    found: list[dict[str, object]] = []
    for week in range(STAY // WEEK):
        for day in days:
            starts = opened + WEEK * week + timedelta(days=day, hours=9)
            if starts >= until:
                return found
            roll = rng.random()
            attended = roll < 0.8
            found.append(
                {
                    "session_id": f"S{week}-{day}",
                    "kind": "group",
                    "starts_at": format_instant(starts),
                    "minutes": minutes,
                    "level": level.value,
                    "status": "attended" if attended else "missed",
                    "attended_minutes": minutes if attended else 0,
                    "modality": ("telehealth" if rng.random() < 1 / 6 else "in_person") if attended else None,
                    "excused": None if attended else roll < 0.9,
                    "reason": None if attended else ("illness" if roll < 0.9 else "no_show"),
                }
            )
    return found
