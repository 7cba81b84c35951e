"""The `episodes` read model: one row per episode, folded with the domain's own `evolve`.

It is written in the append's transaction, records its checkpoint (the last position it has seen), and
can be rebuilt from the log by `rebuild_episodes`, which gives a byte-identical table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine, text

from domain.codec import EventEnvelope, decode, encode, from_envelope
from domain.episode import Episode
from domain.events import EVENT_TYPES
from domain.fold import evolve
from eventlog.records import StoredEvent
from eventlog.store import PostgresEventStore

_LOAD = text("SELECT state FROM episodes WHERE episode_id = ANY(:ids)")
_UPSERT = text(
    """
    INSERT INTO episodes (episode_id, client_id, status, status_since, level, level_since, flags, opened_at,
                          closed_at, version, last_position, state)
    VALUES (:episode_id, :client_id, :status, :status_since, :level, :level_since, :flags, :opened_at,
            :closed_at, :version, :last_position, CAST(:state AS jsonb))
    ON CONFLICT (episode_id) DO UPDATE SET
        client_id = EXCLUDED.client_id, status = EXCLUDED.status, status_since = EXCLUDED.status_since,
        level = EXCLUDED.level, level_since = EXCLUDED.level_since, flags = EXCLUDED.flags,
        opened_at = EXCLUDED.opened_at, closed_at = EXCLUDED.closed_at, version = EXCLUDED.version,
        last_position = EXCLUDED.last_position, state = EXCLUDED.state
    """
)
_CHECKPOINT = text("UPDATE projection_checkpoints SET position = :position WHERE name = 'episodes'")


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
        "last_position": position,
        "state": json.dumps(encode(state), sort_keys=True),
    }


class EpisodesProjection:
    """Keeps `episodes` current. Events of types the domain does not fold (other streams) are skipped."""

    name = "episodes"

    def apply(self, connection: Connection, events: Sequence[StoredEvent]) -> None:
        relevant = [e for e in events if e.event_type in EVENT_TYPES]
        if relevant:
            ids = sorted({e.stream_id for e in relevant})
            states: dict[str, Episode | None] = {
                row.state["episode_id"]: decode(Episode, row.state) for row in connection.execute(_LOAD, {"ids": ids})
            }
            last: dict[str, int] = {}
            for event in relevant:
                states[event.stream_id] = evolve(states.get(event.stream_id), episode_event(event))
                last[event.stream_id] = event.position
            connection.execute(
                _UPSERT, [_row(state, last[sid]) for sid, state in states.items() if state is not None and sid in last]
            )
        connection.execute(_CHECKPOINT, {"position": events[-1].position})


def rebuild_episodes(store: PostgresEventStore, page_size: int = 5000) -> int:
    """Rebuild `episodes` from the whole log in one transaction (appends wait); return events folded."""
    projection = EpisodesProjection()
    count = 0
    with store.engine.begin() as connection:
        connection.execute(text("SELECT 1 FROM log_head FOR UPDATE"))  # hold appends off while we rebuild
        connection.execute(text("DELETE FROM episodes"))
        connection.execute(_CHECKPOINT, {"position": 0})
        after = 0
        while True:
            rows = connection.execute(
                text(
                    "SELECT position, stream_id, stream_version, event_id, event_type, schema_version,"
                    " payload::text AS payload, metadata::text AS metadata, occurred_at, recorded_at, prev_hash,"
                    " hash FROM events WHERE position > :after ORDER BY position LIMIT :limit"
                ),
                {"after": after, "limit": page_size},
            ).all()
            if not rows:
                break
            page = [store._row_to_event(row) for row in rows]
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
