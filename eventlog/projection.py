"""The `episodes` read model: one row per episode, folded with the domain's own `evolve`.

It is written in the append's transaction, records its checkpoint (the last position it has seen), and
can be rebuilt from the log by `rebuild_episodes`, which gives a byte-identical table.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine, text

from continuum.domain.codec import EventEnvelope, decode, encode, from_envelope
from continuum.domain.episode import Episode
from continuum.domain.errors import DomainError, UnknownEventType
from continuum.domain.events import EVENT_TYPES, EpisodeOpened
from continuum.domain.facility_decisions import facility_of
from continuum.domain.fold import evolve, fold
from continuum.eventlog.records import NewEvent, StoredEvent
from continuum.eventlog.store import InlineProjection, PostgresEventStore

_LOAD = text("SELECT state FROM episodes WHERE episode_id = ANY(:ids)")
_EXISTING_EPISODES = text("SELECT episode_id FROM episodes WHERE episode_id = ANY(:ids)")
_UPSERT = text(
    """
    INSERT INTO episodes (episode_id, client_id, status, status_since, level, level_since, flags, opened_at,
                          closed_at, version, facility, last_position, state)
    VALUES (:episode_id, :client_id, :status, :status_since, :level, :level_since, :flags, :opened_at,
            :closed_at, :version, :facility, :last_position, CAST(:state AS jsonb))
    ON CONFLICT (episode_id) DO UPDATE SET
        client_id = EXCLUDED.client_id, status = EXCLUDED.status, status_since = EXCLUDED.status_since,
        level = EXCLUDED.level, level_since = EXCLUDED.level_since, flags = EXCLUDED.flags,
        opened_at = EXCLUDED.opened_at, closed_at = EXCLUDED.closed_at, version = EXCLUDED.version,
        facility = EXCLUDED.facility, last_position = EXCLUDED.last_position, state = EXCLUDED.state
    """
)
_CHECKPOINT = text("UPDATE projection_checkpoints SET position = :position WHERE name = 'episodes'")
# The usual append (one episode): the row and the checkpoint in one round trip.
_UPSERT_AND_CHECKPOINT = text(
    f"WITH upserted AS ({_UPSERT.text} RETURNING 1) "
    "UPDATE projection_checkpoints SET position = :last_position WHERE name = 'episodes'"
)
CACHE_SIZE = 10_000
_COLUMNS = (
    "episode_id",
    "client_id",
    "status",
    "status_since",
    "level",
    "level_since",
    "flags",
    "opened_at",
    "closed_at",
    "version",
    "facility",
)
# Inline in the append statement: applies only if the stream stood at the version the state was folded on.
_INLINE = (
    "projected_row AS (INSERT INTO episodes ("
    + ", ".join(_COLUMNS)
    + ", last_position, state) SELECT "
    + ", ".join(f"%(p_{c})s" for c in _COLUMNS)
    + ", a.first_position + %(p_n)s - 1, CAST(%(p_state)s AS jsonb) FROM appended a"
    " WHERE a.outcome = 'appended' AND a.stream_version - %(p_n)s = %(p_prior_version)s"
    " ON CONFLICT (episode_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in (*_COLUMNS[1:], "last_position", "state"))
    + " RETURNING last_position), "
    "projected AS (UPDATE projection_checkpoints SET position = (SELECT last_position FROM projected_row)"
    " WHERE name = 'episodes' AND EXISTS (SELECT 1 FROM projected_row) RETURNING 1)"
)  # psycopg placeholders: the store runs it through the driver (see InlineProjection)


def episode_event(event: StoredEvent):  # type: ignore[no-untyped-def]
    """The domain event a stored episode event holds (after upcasting)."""
    return from_envelope(EventEnvelope(event.event_type, event.schema_version, event.payload))


def _row(state: Episode, position: int) -> dict[str, object]:
    return {
        "episode_id": state.episode_id,
        "client_id": state.client_id,
        "status": state.status.value,
        "status_since": state.status_since,
        "level": state.level.value if state.level else None,
        "level_since": state.level_since,
        "flags": list(state.flags),
        "opened_at": state.opened_at,
        "closed_at": state.closed_at,
        "version": state.version,
        "facility": facility_of(state),
        "last_position": position,
        "state": json.dumps(encode(state), sort_keys=True),
    }


class EpisodesProjection:
    """Keeps `episodes` current. Events of types the domain does not fold (other streams) are skipped.

    Recently folded states are cached, and a cached state is used only when its version equals the
    stream's version just before this append (read under the log lock), so it is exactly the stored one.
    """

    name = "episodes"

    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        self._cache: OrderedDict[str, Episode] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def forget(self, stream_id: str) -> None:
        with self._lock:
            self._cache.pop(stream_id, None)

    def _cached(self, stream_id: str, version_before: int) -> Episode | None:
        with self._lock:
            state = self._cache.get(stream_id)
            return state if state is not None and state.version == version_before else None

    def _remember(self, states: dict[str, Episode]) -> None:
        with self._lock:
            for stream_id, state in states.items():
                self._cache[stream_id] = state
                self._cache.move_to_end(stream_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def plan(self, connection: Connection, stream_id: str, events: Sequence[NewEvent]) -> InlineProjection | None:
        """Fold the new events onto the last known state, to be written inside the append statement."""
        try:
            domain_events = [
                from_envelope(EventEnvelope(e.event_type, e.schema_version, dict(e.payload))) for e in events
            ]
        except DomainError:
            return None  # not (current) episode events: the general path decides
        with self._lock:
            prior = self._cache.get(stream_id)
        if prior is None and not isinstance(domain_events[0], EpisodeOpened):
            row = connection.execute(_LOAD, {"ids": [stream_id]}).first()
            prior = decode(Episode, row.state) if row else None
        try:
            state = fold(domain_events, prior)
        except DomainError:
            return None  # maybe a stale prior; the general path folds on the stored state
        assert state is not None
        params = {f"p_{k}": v for k, v in _row(state, 0).items() if k != "last_position"}
        params.update(p_n=len(events), p_prior_version=prior.version if prior else 0)
        return InlineProjection(
            _INLINE, params, prior.version if prior else 0, lambda: self._remember({stream_id: state})
        )

    def apply(self, connection: Connection, events: Sequence[StoredEvent]) -> None:
        unknown = [e for e in events if e.event_type not in EVENT_TYPES]
        if unknown:
            ids = sorted({e.stream_id for e in unknown})
            opened = {e.stream_id for e in events if e.event_type == EpisodeOpened.type_name()}
            known_episodes = {row.episode_id for row in connection.execute(_EXISTING_EPISODES, {"ids": ids})}
            for event in unknown:
                if event.stream_id in known_episodes | opened:  # an episode's history must stay readable
                    raise UnknownEventType(
                        f"unknown event type {event.event_type!r} in episode {event.stream_id}; refused"
                    )
        relevant = [e for e in events if e.event_type in EVENT_TYPES]
        if not relevant:
            connection.execute(_CHECKPOINT, {"position": events[-1].position})
            return
        states: dict[str, Episode | None] = {}
        missing = []
        for stream_id in dict.fromkeys(e.stream_id for e in relevant):
            first = next(e for e in relevant if e.stream_id == stream_id)
            cached = self._cached(stream_id, first.stream_version - 1) if first.stream_version > 1 else None
            if cached is not None or first.stream_version == 1:
                states[stream_id] = cached
            else:
                missing.append(stream_id)
        if missing:
            for row in connection.execute(_LOAD, {"ids": missing}):
                states[row.state["episode_id"]] = decode(Episode, row.state)
        last: dict[str, int] = {}
        for event in relevant:
            states[event.stream_id] = evolve(states.get(event.stream_id), episode_event(event))
            last[event.stream_id] = event.position
        folded = {sid: state for sid, state in states.items() if state is not None}
        rows = [_row(state, last[sid]) for sid, state in folded.items()]
        if len(rows) == 1 and rows[0]["last_position"] == events[-1].position:
            connection.execute(_UPSERT_AND_CHECKPOINT, rows[0])
        else:
            connection.execute(_UPSERT, rows)
            connection.execute(_CHECKPOINT, {"position": events[-1].position})
        self._remember(folded)


def rebuild_episodes(store: PostgresEventStore, page_size: int = 5000) -> int:
    """Rebuild `episodes` from the whole log in one transaction (appends wait); return events folded."""
    projection = EpisodesProjection()
    count = 0
    with store.engine.begin() as connection:
        connection.execute(text("SELECT 1 FROM log_head FOR UPDATE"))  # hold appends off while we rebuild
        connection.execute(text("DELETE FROM episodes"))
        connection.execute(_CHECKPOINT, {"position": 0})
        after = 0
        while page := store.read_page(connection, after_position=after, limit=page_size):
            projection.apply(connection, page)
            count += len(page)
            after = page[-1].position
    return count


def episode_as_of(
    store: PostgresEventStore, episode_id: str, *, at: datetime | None = None, version: int | None = None
) -> Episode | None:
    """The episode as the record stood at instant `at` (events recorded by then), or at `version`."""
    events: Iterable[StoredEvent] = store.read_stream(episode_id, to_version=version, recorded_until=at)
    state: Episode | None = None
    for event in events:
        state = evolve(state, episode_event(event))
    return state


def projection_fingerprint(engine: Engine) -> str:
    """An md5 over every row of `episodes` in key order: equal fingerprints mean byte-identical tables."""
    with engine.connect() as connection:
        return str(
            connection.execute(
                text("SELECT md5(coalesce(string_agg(e::text, E'\\n' ORDER BY episode_id), '')) FROM episodes e")
            ).scalar_one()
        )
