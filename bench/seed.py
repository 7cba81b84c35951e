"""Seeding a large, valid event log fast: rows built with their hash chain in Python, loaded with COPY.

Every seeded row is a real domain event with a correct hash and link, so verification and replay work
on it exactly as on a log the store wrote.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg

from continuum.domain.codec import format_instant, to_envelope
from continuum.domain.events import DomainEvent, EpisodeOpened, FlagCleared, FlagRaised
from continuum.domain.flags import Flag, FlagFamily
from continuum.domain.ids import ClientId, EpisodeId
from continuum.eventlog.hashing import GENESIS_HASH, canonical_json, event_hash
from continuum.eventlog.records import EventMetadata

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MISSING = Flag(FlagFamily.RESULT_MISSING)
COLUMNS = (
    "position, stream_id, stream_version, event_id, event_type, schema_version, payload, metadata, occurred_at,"
    " recorded_at, prev_hash, hash"
)


def episode_events(episode: str, count: int) -> Iterator[DomainEvent]:
    """An opened episode followed by flags raised and cleared (valid for the fold)."""
    eid = EpisodeId(episode)
    yield EpisodeOpened(eid, T0, ClientId(f"client-{episode}"))
    for i in range(1, count):
        at = T0 + timedelta(seconds=i)
        yield FlagRaised(eid, at, MISSING, "bench") if i % 2 else FlagCleared(eid, at, MISSING)


def seed(conninfo: str, streams: list[tuple[str, int]]) -> int:
    """Append `count` events to each `(stream, count)` in one COPY, continuing the log's chain (event ids from
    the position, so a seeded log is the same every run)."""
    metadata = EventMetadata(actor="service:bench")
    rows = (
        (stream, version, event, metadata)
        for stream, count in streams
        for version, event in enumerate(episode_events(stream, count), start=1)
    )
    return _copy(conninfo, rows, lambda position: str(uuid.UUID(int=position)))


def seed_events(conninfo: str, rows: Iterable[tuple[str, int, DomainEvent, EventMetadata]]) -> int:
    """Append `(stream, version, event, metadata)` rows, in the order given, in one COPY continuing the chain."""
    return _copy(conninfo, rows, lambda position: str(uuid.uuid4()))


def _copy(
    conninfo: str, rows: Iterable[tuple[str, int, DomainEvent, EventMetadata]], event_id_at: Callable[[int], str]
) -> int:
    """The rows as the store would have hashed and chained them, recorded when they occurred; the last position."""
    with psycopg.connect(conninfo) as conn:
        position, previous = conn.execute("SELECT position, hash FROM log_head FOR UPDATE").fetchone()  # type: ignore[misc]
        previous = bytes(previous) if position else GENESIS_HASH
        with conn.cursor().copy(f"COPY events ({COLUMNS}) FROM STDIN") as copy:
            for stream, version, event, meta in rows:
                position += 1
                envelope = to_envelope(event)
                payload = canonical_json(envelope.data)
                metadata = canonical_json(meta.as_dict())
                event_id = event_id_at(position)
                digest = event_hash(
                    previous,
                    position=position,
                    stream_id=stream,
                    stream_version=version,
                    event_id=event_id,
                    event_type=envelope.type,
                    schema_version=envelope.schema_version,
                    occurred_at=event.occurred_at,
                    recorded_at=event.occurred_at,
                    payload_json=payload,
                    metadata_json=metadata,
                )
                at = format_instant(event.occurred_at)
                row = (position, stream, version, event_id, envelope.type, envelope.schema_version, payload, metadata)
                copy.write_row((*row, at, at, previous, digest))
                previous = digest
        conn.execute("UPDATE log_head SET position = %s, hash = %s", (position, previous))
        conn.commit()
    return int(position)
