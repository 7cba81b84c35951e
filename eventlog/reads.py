"""Read queries for directors and auditors: over the episodes projection and the log, never the workflows."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text

from continuum.domain.aftercare import Consent
from continuum.domain.codec import decode, parse_instant
from continuum.domain.disclosure import still_disclosed_to
from continuum.domain.facilities import Facilities, Facility
from continuum.domain.flags import ALERT_OF, SUBJECT_OF, Alert, Flag, FlagFamily
from continuum.domain.levels import LevelOfCare

Rows = list[dict[str, Any]]  # named apart: inside EpisodeReads, `list` is its method
Located = list[tuple[str, dict[str, Any]]]  # (facility, state) pairs, named apart likewise


@dataclass(frozen=True)
class Page:
    items: Rows
    total: int
    page: int
    page_size: int


_SUMMARY = (
    "episode_id, client_id, status, status_since, level, level_since, flags, opened_at, closed_at, version, facility"
)
Scope = Collection[str] | None  # the facilities a reader sees (api/auth.py decides it); None: every one


def _at_facilities(facilities: Scope, facility: str | None, *conditions: str) -> tuple[list[str], dict[str, object]]:
    """The conditions of a query over `episodes`, narrowed to the reader's facilities (and to `facility`)."""
    where, params = list(conditions), dict[str, object]()
    if facilities is not None:
        where.append("facility = ANY(:scope)")
        params["scope"] = sorted(facilities)
    if facility:
        where.append("facility = :facility")
        params["facility"] = facility
    return where, params


def _flag_or_none(spelling: str) -> Flag | None:
    try:
        return Flag.parse(spelling)
    except ValueError:
        return None


# A JSON object of one list in an episode's state, id -> due date (for the alerts' `due_at`).
_DUE_BY_ID = (
    "(SELECT jsonb_object_agg(item->>'{1}', item->>'{2}') FROM jsonb_array_elements(coalesce(state->'{0}', '[]'))"
    " AS item WHERE item->>'{2}' IS NOT NULL)"
)
_OPEN_EPISODES_EVENTS = "events JOIN episodes ON episodes.episode_id = events.stream_id AND episodes.status <> 'closed'"


def _due_at(row: Any, flag: Flag) -> datetime | None:
    """The due date an alerting flag stands for: the review's, the plan's, the test result's, the answer's."""
    due: str | None
    if flag.family is FlagFamily.REVIEW_OVERDUE:
        due = row["review_due"]
    elif flag.family is FlagFamily.PLAN_OVERDUE:
        due = row["plan_due"]
    elif flag.family is FlagFamily.RESULT_MISSING:
        due = (row["results_due"] or {}).get(flag.subject)
    elif flag.family is FlagFamily.REFERRAL_UNANSWERED:
        due = (row["answers_due"] or {}).get(flag.subject)
    elif flag.family in (FlagFamily.AUTHORIZATION_EXPIRED, FlagFamily.CONCURRENT_REVIEW_OVERDUE):
        due = (row["authorizations_end"] or {}).get(flag.subject)  # the stay, or the review, was due by its end
    else:
        due = None
    return parse_instant(due) if due else None


_ELEMENT_KEYS = {"tests": "test_id", "referrals": "referral_id"}  # the lists `element` may read, by their key


class EpisodeReads:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list(
        self,
        *,
        level: str | None = None,
        status: str | None = None,
        flag: str | None = None,
        page: int = 1,
        page_size: int = 50,
        id_prefix: str | None = None,
        facility: str | None = None,
        facilities: Scope = None,
    ) -> Page:
        where, params = _at_facilities(facilities, facility, "TRUE")
        params.update(limit=page_size, offset=(page - 1) * page_size)
        if id_prefix:  # search by episode id (a prefix; LIKE's wildcards are escaped)
            where.append("episode_id LIKE :prefix ESCAPE '\\'")
            params["prefix"] = id_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        if level:
            where.append("level = :level")
            params["level"] = level
        if status:
            where.append("status = :status")
            params["status"] = status
        if flag:
            wanted = _flag_or_none(flag)
            if wanted is None:  # not a family of ours: no episode carries it
                where.append("FALSE")
            elif wanted.subject is not None:  # one exact flag, such as result_missing:<test id> (GIN on flags)
                where.append("flags @> ARRAY[CAST(:flag AS text)]")
                params["flag"] = str(wanted)
            else:  # a family, such as result_missing (GIN on continuum_flag_families)
                where.append("continuum_flag_families(flags) @> ARRAY[CAST(:flag AS text)]")
                params["flag"] = str(wanted.family)
        clause = " AND ".join(where)
        with self.engine.connect() as conn:
            total = conn.execute(text(f"SELECT count(*) FROM episodes WHERE {clause}"), params).scalar_one()
            rows = (
                conn.execute(
                    text(
                        f"SELECT {_SUMMARY} FROM episodes WHERE {clause}"
                        " ORDER BY episode_id LIMIT :limit OFFSET :offset"
                    ),
                    params,
                )
                .mappings()
                .all()
            )
        return Page([dict(r) for r in rows], int(total), page, page_size)

    def get(self, episode_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT state FROM episodes WHERE episode_id = :e"), {"e": episode_id}).first()
        return dict(row.state) if row else None

    def element(self, episode_id: str, collection: str, key: str, value: str) -> dict[str, Any] | None:
        """One element of a list in an episode's state (a test by its test_id, a referral by its referral_id),
        read in the database: the API's lab and partner checks need that one, not the whole state."""
        if collection not in _ELEMENT_KEYS or _ELEMENT_KEYS[collection] != key:
            raise ValueError(f"no {collection} keyed by {key} in an episode's state")
        query = text(
            f"SELECT item FROM episodes, jsonb_array_elements(state->'{collection}') AS item"
            f" WHERE episode_id = :e AND item->>'{key}' = :v LIMIT 1"
        )
        with self.engine.connect() as conn:
            row = conn.execute(query, {"e": episode_id, "v": value}).first()
        return dict(row.item) if row else None

    def facility(self, episode_id: str) -> str | None:
        """The facility the episode is at (None: no such episode)."""
        with self.engine.connect() as conn:
            found = conn.execute(text("SELECT facility FROM episodes WHERE episode_id = :e"), {"e": episode_id})
            return found.scalar_one_or_none()

    def occupancy(self, facility: str) -> dict[LevelOfCare, int]:
        """Open episodes at the facility by level: the beds and slots taken now."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT level, count(*) AS taken FROM episodes WHERE facility = :f AND status <> 'closed'"
                    " AND level IS NOT NULL GROUP BY level"
                ),
                {"f": facility},
            ).all()
        return {LevelOfCare(row.level): int(row.taken) for row in rows}

    def census(self, facilities: Scope = None, facility: str | None = None) -> Rows:
        """Open episodes (intake, active, on hold) by facility, level and status; closed ones are counted apart."""
        where, params = _at_facilities(facilities, facility, "status <> 'closed'")
        return self._rows(
            "SELECT facility, coalesce(level, 'none') AS level, status, count(*) AS episodes,"
            " count(*) FILTER (WHERE state -> 'waitlist' <> 'null'::jsonb) AS waitlisted"
            f" FROM episodes WHERE {' AND '.join(where)} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            params,
        )

    def waitlist(self, facilities: Scope = None, facility: str | None = None) -> Rows:
        """Open episodes waiting for a level their facility could not take them at, with the interim level."""
        where, params = _at_facilities(
            facilities, facility, "status <> 'closed'", "state -> 'waitlist' <> 'null'::jsonb"
        )
        return self._rows(
            "SELECT episode_id, facility, state -> 'waitlist' ->> 'wanted_level' AS wanted_level,"
            " state -> 'waitlist' ->> 'interim_level' AS interim_level, state -> 'waitlist' ->> 'since' AS since"
            f" FROM episodes WHERE {' AND '.join(where)} ORDER BY facility, since, episode_id",
            params,
        )

    def _rows(self, sql: str, params: dict[str, object]) -> Rows:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(text(sql), params).mappings().all()]

    def closed_count(self, facilities: Scope = None, facility: str | None = None) -> int:
        where, params = _at_facilities(facilities, facility, "status = 'closed'")
        with self.engine.connect() as conn:
            found = conn.execute(text(f"SELECT count(*) FROM episodes WHERE {' AND '.join(where)}"), params)
            return int(found.scalar_one())

    def alerts(self, since: datetime, facilities: Scope = None, facility: str | None = None) -> dict[str, Rows]:
        """Overdue reviews, overdue treatment plans and missing results now open, and positives and step-ups
        recorded since `since`; stays beyond or without their authorization, and overdue concurrent reviews; of open
        episodes only (a closed episode's flags and events alert nobody), at the reader's facilities (and `facility`,
        if given). Each row names the episode's client, level and facility; a flag's row carries `due_at`, the due
        date it missed (an authorization's end, for its flags)."""
        where, params = _at_facilities(facilities, facility, "cardinality(flags) > 0", "status <> 'closed'")
        params["since"] = since
        scoped = "".join(f" AND episodes.{condition}" for condition in where[2:])
        with self.engine.connect() as conn:
            flagged = (
                conn.execute(
                    text(
                        "SELECT episode_id, client_id, level, facility, flags,"
                        " state->'pending_review'->>'due_at' AS review_due, state->>'plan_due_at' AS plan_due,"
                        f" {_DUE_BY_ID.format('tests', 'test_id', 'result_due_at')} AS results_due,"
                        f" {_DUE_BY_ID.format('referrals', 'referral_id', 'answer_due_at')} AS answers_due,"
                        f" {_DUE_BY_ID.format('authorizations', 'authorization_id', 'end')} AS authorizations_end"
                        f" FROM episodes WHERE {' AND '.join(where)} ORDER BY episode_id"
                    ),
                    params,
                )
                .mappings()
                .all()
            )
            positives = (
                conn.execute(
                    text(
                        "SELECT stream_id AS episode_id, client_id, level, facility, payload->>'test_id' AS test_id,"
                        " payload->>'result' AS result,"
                        " payload->'substances' AS substances, payload->>'interpretation' AS interpretation,"
                        f" recorded_at FROM {_OPEN_EPISODES_EVENTS}"
                        " WHERE event_type IN ('TestResultRecorded', 'TestResultCorrected') AND recorded_at >= :since"
                        " AND (payload->>'counts_as_positive')::boolean" + scoped + " ORDER BY position"
                    ),
                    params,
                )
                .mappings()
                .all()
            )
            step_ups = (
                conn.execute(
                    text(
                        "SELECT stream_id AS episode_id, client_id, level, facility,"
                        " payload->>'from_level' AS from_level, payload->>'to_level' AS to_level,"
                        " payload->>'cause' AS cause,"
                        f" recorded_at FROM {_OPEN_EPISODES_EVENTS}"
                        " WHERE event_type = 'LevelChanged' AND recorded_at >= :since"
                        " AND payload->>'direction' = 'up'" + scoped + " ORDER BY position"
                    ),
                    params,
                )
                .mappings()
                .all()
            )
        by_alert: dict[Alert, Rows] = {alert: [] for alert in Alert}
        for row in flagged:
            for flag in (f for f in map(_flag_or_none, row["flags"]) if f is not None):
                alert = ALERT_OF.get(flag.family)
                if alert is None:
                    continue
                subject = SUBJECT_OF.get(flag.family)
                episode = {key: row[key] for key in ("episode_id", "client_id", "level", "facility")}
                due = _due_at(row, flag)
                if subject is None:  # the episode itself is the alert (once, whatever else it carries)
                    by_alert[alert].append({**episode, "flags": row["flags"], "due_at": due})
                elif flag.subject is not None:
                    by_alert[alert].append({**episode, subject: flag.subject, "due_at": due})
        return {
            Alert.OVERDUE_REVIEWS.value: by_alert[Alert.OVERDUE_REVIEWS],
            Alert.MISSING_RESULTS.value: by_alert[Alert.MISSING_RESULTS],
            "positives": [dict(r) for r in positives],
            "step_ups": [dict(r) for r in step_ups],
            Alert.UNANSWERED_REFERRALS.value: by_alert[Alert.UNANSWERED_REFERRALS],
            Alert.OVERDUE_PLANS.value: by_alert[Alert.OVERDUE_PLANS],
            Alert.BEYOND_AUTHORIZATION.value: by_alert[Alert.BEYOND_AUTHORIZATION],
            Alert.UNAUTHORIZED_LEVELS.value: by_alert[Alert.UNAUTHORIZED_LEVELS],
            Alert.OVERDUE_CONCURRENT_REVIEWS.value: by_alert[Alert.OVERDUE_CONCURRENT_REVIEWS],
        }

    def with_authorizations(self, facilities: Scope = None, facility: str | None = None) -> Located:
        """The facility and state of each open episode that has payer authorizations (the index of migration 0015),
        at the reader's facilities (and `facility`, if given)."""
        where, params = _at_facilities(
            facilities, facility, "(state -> 'authorizations') <> '[]'::jsonb", "status <> 'closed'"
        )
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT facility, state FROM episodes WHERE {' AND '.join(where)} ORDER BY episode_id"), params
            ).all()
        return [(str(row.facility), dict(row.state)) for row in rows]

    def disclosures(self, episode_id: str, since: datetime | None, until: datetime | None) -> Rows:
        """The accounting of disclosures (42 CFR 2.25): to whom, when, why, what, under which consent."""
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    text(
                        "SELECT occurred_at AS disclosed_at, payload->'disclosure'->>'recipient' AS recipient,"
                        " payload->'disclosure'->>'purpose' AS purpose,"
                        " payload->'disclosure'->'disclosed' AS disclosed,"
                        " payload->'disclosure'->>'consent_id' AS consent_id, payload->>'referral_id' AS referral_id"
                        " FROM events WHERE stream_id = :e AND event_type = 'ReferralIssued'"
                        " AND json_typeof(payload->'disclosure') = 'object'"
                        + (" AND occurred_at >= :since" if since else "")
                        + (" AND occurred_at < :until" if until else "")
                        + " ORDER BY stream_version"
                    ),
                    {"e": episode_id, "since": since, "until": until},
                )
                .mappings()
                .all()
            )
            exports = (
                conn.execute(  # an export is a disclosure too: the access log names its recipient
                    text(
                        "SELECT accessed_at AS disclosed_at, recipient, purpose, format, basis, key_id, asserted_by,"
                        " consent_id, court_order, emergency_clinician, emergency_facility, emergency_nature"
                        " FROM record_access WHERE episode_id = :e AND recipient IS NOT NULL"
                        + (" AND accessed_at >= :since" if since else "")
                        + (" AND accessed_at < :until" if until else "")
                        + " ORDER BY access_id"
                    ),
                    {"e": episode_id, "since": since, "until": until},
                )
                .mappings()
                .all()
            )
        referrals = [{**dict(r), "kind": "referral", "basis": None} for r in rows]  # made under a consent
        exported = [
            {
                "disclosed_at": r["disclosed_at"],
                "recipient": r["recipient"],
                "purpose": r["purpose"],
                "disclosed": [f"the episode's full history ({r['format']})"],
                "consent_id": r["consent_id"],
                "referral_id": None,
                "kind": "export",
                "basis": r["basis"],
                "exported_by": r["key_id"],
                "asserted_by": r["asserted_by"],
                "court_order": r["court_order"],
                "emergency": {
                    "clinician": r["emergency_clinician"],
                    "facility": r["emergency_facility"],
                    "nature": r["emergency_nature"],
                }
                if r["emergency_clinician"] is not None
                else None,
            }
            for r in exports
        ]
        return sorted(referrals + exported, key=lambda d: d["disclosed_at"])

    def referrals_for(self, partner: str, at: datetime) -> Rows:
        """The referrals disclosed to one partner (never those still awaiting the client's consent), while the
        episode has a consent to it valid at `at` (`domain.disclosure.still_disclosed_to`): once the client
        revokes it, also after the episode closed, the partner reads nothing more of that episode."""
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    text(
                        "SELECT e.episode_id, r->>'referral_id' AS referral_id, r->>'resource_id' AS resource_id,"
                        " r->>'resource_type' AS resource_type, r->>'status' AS status, r->>'issued_at' AS issued_at,"
                        " r->>'answer_due_at' AS answer_due_at, e.state->'consents' AS consents"
                        " FROM episodes e, jsonb_array_elements(e.state->'referrals') r"
                        " WHERE r->>'recipient' = :p AND r->>'status' <> 'awaiting_consent' ORDER BY 2"
                    ),
                    {"p": partner},
                )
                .mappings()
                .all()
            )
        shown: Rows = []
        for row in rows:
            consents = [decode(Consent, c) for c in row["consents"] or []]
            if still_disclosed_to(consents, partner, at):
                shown.append({k: v for k, v in row.items() if k != "consents"})
        return shown


def census_totals(rows: Rows) -> Rows:
    """The census rows (by facility, level and status) summed over the facilities: by level and status."""
    totals: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (str(row["level"]), str(row["status"]))
        totals[key] = totals.get(key, 0) + int(row["episodes"])
    return [{"level": level, "status": status, "episodes": n} for (level, status), n in sorted(totals.items())]


def facility_census(facilities: Facilities, rows: Rows, scope: Scope = None, only: str | None = None) -> Rows:
    """Each facility in `scope` (or `only` that one), from the census rows: its open episodes by level against
    the level's capacity (None: no limit), with how many of them wait there for another level. An episode at a
    facility no longer configured (one opened before facilities, at `main`) still counts, under that id."""
    named = [f for f in facilities.by_id.values() if (scope is None or f.facility_id in scope)]
    extra = sorted({str(r["facility"]) for r in rows} - {f.facility_id for f in named})
    shown = [f for f in [*(f.facility_id for f in named), *extra] if only is None or f == only]
    return [_facility_row(facilities.get(fid), fid, [r for r in rows if r["facility"] == fid]) for fid in shown]


def _facility_row(facility: Facility | None, facility_id: str, rows: Rows) -> dict[str, Any]:
    def count(level: str, column: str = "episodes") -> int:
        return sum(int(r[column]) for r in rows if r["level"] == level)

    levels = []
    for level in LevelOfCare:
        taken = count(level.value)
        offered = facility.offers(level) if facility else taken > 0
        if not offered and not taken:
            continue
        capacity = facility.capacity.get(level) if facility else None
        free = None if capacity is None else max(capacity - taken, 0)
        waiting = count(level.value, "waitlisted")
        levels.append(
            {
                "level": level.value,
                "offered": offered,
                "occupancy": taken,
                "capacity": capacity,
                "free": free,
                "waitlisted": waiting,
            }
        )
    return {
        "facility": facility_id,
        "name": facility.name if facility else facility_id,
        "open": sum(int(r["episodes"]) for r in rows),
        "unassessed": count("none"),
        "levels": levels,
    }
