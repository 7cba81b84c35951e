"""Attendance reads: each episode's weeks judged by the policy it was decided under, and the attendance report
(one row per client and care week in a date range) that the API and the CLI both serve."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from continuum.domain.attendance import WEEK_DAYS
from continuum.domain.attendance_report import REPORT_COLUMNS, AttendanceRow, report_rows
from continuum.domain.codec import format_instant, parse_instant
from continuum.domain.episode import Episode, EpisodeStatus, HoldSpell, LevelSpell
from continuum.domain.ids import ClientId, EpisodeId
from continuum.domain.levels import LevelOfCare
from continuum.domain.policy import Policy, load_policy
from continuum.domain.services import Modality, ServicesPolicy, Session, SessionStatus
from continuum.eventlog.policies import PolicyRegistry

# Every decision event names the policy version; the episode's workflow keeps one policy for its whole life.
_EPISODE_VERSION = text(
    "SELECT payload->>'policy_version' FROM events WHERE stream_id = :id AND payload->>'policy_version' IS NOT NULL"
    " ORDER BY stream_version LIMIT 1"
)
# Only what a care week reads, with the sessions of the range (a week either side) instead of every session.
_REPORT = text(
    """
    SELECT jsonb_build_object(
               'episode_id', e.state->'episode_id', 'client_id', e.state->'client_id', 'status', e.state->'status',
               'opened_at', e.state->'opened_at', 'status_since', e.state->'status_since',
               'placed_at', e.state->'placed_at', 'closed_at', e.state->'closed_at',
               'attendance_since', e.state->'attendance_since', 'level_spells', e.state->'level_spells',
               'hold_spells', e.state->'hold_spells',
               'sessions', jsonb_path_query_array(e.state->'sessions',
                   '$[*] ? (@.starts_at >= $from && @.starts_at < $to)',
                   jsonb_build_object('from', CAST(:sessions_from AS text), 'to', CAST(:sessions_to AS text)))
           ) AS state,
           v.version
    FROM episodes e
    LEFT JOIN LATERAL (
        SELECT payload->>'policy_version' AS version FROM events
        WHERE stream_id = e.episode_id AND payload->>'policy_version' IS NOT NULL ORDER BY stream_version LIMIT 1
    ) v ON TRUE
    WHERE (e.state->'sessions') <> '[]'::jsonb
      AND e.opened_at < :end AND (e.closed_at IS NULL OR e.closed_at > :closed_after)
      AND (CAST(:level AS text) IS NULL
           OR e.state->'level_spells' @> jsonb_build_array(jsonb_build_object('level', CAST(:level AS text))))
      AND e.episode_id > :after
      AND (CAST(:scope AS text[]) IS NULL OR e.facility = ANY(CAST(:scope AS text[])))
    ORDER BY e.episode_id
    LIMIT :limit
    """
)


PAGE_EPISODES = 200  # episodes a page of the report covers (about 4 rows each for a month)


@dataclass(frozen=True)
class ReportPage:
    rows: list[AttendanceRow]
    next_after: str | None  # the last episode id of this page when more may follow, else None


@dataclass(frozen=True)
class EpisodePolicy:
    """The policy an episode's weeks are judged by, and whether it is the one the episode was decided under
    (False: that version's text is not on record, so the configured policy stands in)."""

    policy: Policy
    version: str
    on_record: bool


class AttendanceReads:
    """Policy texts by version, and attendance judged by each episode's own policy."""

    def __init__(self, engine: Engine, policy_text: str, directory_text: str | None, day: timedelta) -> None:
        self.engine = engine
        self.configured = load_policy(policy_text, directory_text)
        self._directory_text = directory_text
        self.day = day
        self._texts: dict[str, str] = {self.configured.version: policy_text}

    def record_policy(self, policy_text: str) -> str:
        """Keep a policy's text under its version (idempotent); the version."""
        version = PolicyRegistry(self.engine).register(policy_text)
        self._texts[version] = policy_text
        return version

    def policy_of(self, episode_id: str) -> EpisodePolicy:
        """The policy the episode was decided under (by the version its events record)."""
        with self.engine.connect() as conn:
            version = conn.execute(_EPISODE_VERSION, {"id": episode_id}).scalar()
        return self._policy(version)

    def _policy(self, version: str | None) -> EpisodePolicy:
        if version is None:  # nothing decided yet: no care weeks either, so the configured policy is moot
            return EpisodePolicy(self.configured, self.configured.version, False)
        found = self._texts.get(version)
        if found is None:  # not known here yet (a miss is asked again: another process may record it)
            registered = PolicyRegistry(self.engine).get(version)  # the texts GET /api/v1/policy serves
            if registered is None:
                return EpisodePolicy(self.configured, version, False)
            found = self._texts[version] = registered.text
        return EpisodePolicy(load_policy(found, self._directory_text), version, True)

    def report(
        self,
        start: datetime,
        end: datetime,
        now: datetime,
        level: LevelOfCare | None = None,
        *,
        after: str = "",
        episodes: int = PAGE_EPISODES,
        facilities: Collection[str] | None = None,
    ) -> ReportPage:
        """One row per client and care week overlapping [start, end), by episode id then week: the rows of up to
        `episodes` episodes with sessions after the episode id `after` (a page; `next_after` continues it), at
        `facilities` (None: every one)."""
        week = self.day * WEEK_DAYS
        params: dict[str, Any] = {
            "end": end,
            "closed_after": start - week,
            "sessions_from": format_instant(start - week),
            "sessions_to": format_instant(end + week),
            "level": level.value if level else None,
            "after": after,
            "limit": episodes,
            "scope": sorted(facilities) if facilities is not None else None,
        }
        with self.engine.connect() as conn:
            found = conn.execute(_REPORT, params).all()
        rows: list[AttendanceRow] = []
        for state, version in found:
            judged = self._policy(version)
            services: ServicesPolicy | None = judged.policy.services
            if services is None:
                continue  # a policy without [services] has no attendance rules
            episode = _attendance_state(state)
            found_rows = report_rows(episode, services, judged.version, start, end, now, self.day)
            rows += [r for r in found_rows if level is None or level.value in r.level.split("+")]
        next_after = str(found[-1][0]["episode_id"]) if len(found) == episodes else None
        return ReportPage(rows, next_after)

    def report_all(
        self,
        start: datetime,
        end: datetime,
        now: datetime,
        level: LevelOfCare | None = None,
        facilities: Collection[str] | None = None,
    ) -> Iterator[list[AttendanceRow]]:
        """Every page of the report, in order (bounded memory: a page at a time)."""
        after: str | None = ""
        while after is not None:
            page = self.report(start, end, now, level, after=after, facilities=facilities)
            yield page.rows
            after = page.next_after


def _attendance_state(state: dict[str, Any]) -> Episode:
    """The episode as a care week reads it, from the report query's slice of its state. Built by hand, not by
    the generic codec: a program-month decodes thousands of them, and this takes a quarter of the time."""
    when = parse_instant
    return Episode(
        episode_id=EpisodeId(state["episode_id"]),
        client_id=ClientId(state["client_id"]),
        status=EpisodeStatus(state["status"]),
        opened_at=when(state["opened_at"]),
        status_since=when(state["status_since"]),
        placed_at=when(state["placed_at"]) if state.get("placed_at") else None,
        closed_at=when(state["closed_at"]) if state.get("closed_at") else None,
        attendance_since=when(state["attendance_since"]) if state.get("attendance_since") else None,
        level_spells=tuple(LevelSpell(LevelOfCare(s["level"]), when(s["since"])) for s in state["level_spells"] or ()),
        hold_spells=tuple(
            HoldSpell(when(h["start"]), when(h["end"]) if h.get("end") else None) for h in state["hold_spells"] or ()
        ),
        sessions=tuple(
            Session(
                session_id=s["session_id"],
                kind=s["kind"],
                starts_at=when(s["starts_at"]),
                minutes=s["minutes"],
                level=LevelOfCare(s["level"]) if s.get("level") else None,
                status=SessionStatus(s["status"]),
                attended_minutes=s["attended_minutes"],
                modality=Modality(s["modality"]) if s.get("modality") else None,
                excused=s.get("excused"),
                reason=s.get("reason"),
            )
            for s in state["sessions"] or ()
        ),
    )


def report_csv(pages: Iterable[list[AttendanceRow]]) -> Iterator[str]:
    """The report as CSV (RFC 4180, a header line of REPORT_COLUMNS), a chunk per page: instants in UTC, no
    minimum as an empty cell."""
    yield ",".join(REPORT_COLUMNS) + "\r\n"
    for rows in pages:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        for row in rows:
            writer.writerow([_cell(getattr(row, column)) for column in REPORT_COLUMNS])
        yield out.getvalue()


def report_json(rows: list[AttendanceRow]) -> list[dict[str, Any]]:
    return [{column: _json(getattr(row, column)) for column in REPORT_COLUMNS} for row in rows]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_instant(value)
    return str(value)


def _json(value: object) -> object:
    return format_instant(value) if isinstance(value, datetime) else value
