"""PostgresEventStore: the append-only, hash-chained event log.

Guarantees (each tested in tests/integration/test_event_store.py):
- Appends are serialized by a row lock on `log_head`, so positions are gapless and increase in commit
  order: a reader following positions never misses an event committed later into a lower position.
  Cost: one append commits at a time (throughput is bounded by commit latency; batches amortise it).
- An append states the stream version it expects; any other version raises ConcurrencyError.
- An event id already stored with the same content (stream, type, version, payload, occurred_at) is a
  no-op that returns the stored positions, so activity retries never duplicate; different content raises
  EventIdConflict.
- Projections are updated in the append's transaction (they never lag or run ahead of the log).
- The database refuses UPDATE, DELETE and TRUNCATE on `events`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from eventlog.errors import ConcurrencyError, EventIdConflict, StoreBusy, StoreUnavailable
from eventlog.hashing import canonical_json, event_hash
from eventlog.records import AppendResult, EventMetadata, NewEvent, StoredEvent
from eventlog.upcasting import Upcasters


class Projector(Protocol):
    """A read model kept in step with the log inside the append transaction."""

    name: str

    def apply(self, connection: Connection, events: Sequence[StoredEvent]) -> None: ...


_LOCK_HEAD = text("SELECT position, hash, clock_timestamp() AS now FROM log_head WHERE singleton FOR UPDATE")
_EXISTING = text(
    "SELECT event_id, stream_id, event_type, schema_version, payload::text AS payload, occurred_at, position,"
    " stream_version FROM events WHERE event_id = ANY(:ids) ORDER BY position"
)
_STREAM_VERSION = text("SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = :stream_id")
_INSERT = text(
    "INSERT INTO events (position, stream_id, stream_version, event_id, event_type, schema_version, payload,"
    " metadata, occurred_at, recorded_at, prev_hash, hash) VALUES (:position, :stream_id, :stream_version,"
    " :event_id, :event_type, :schema_version, CAST(:payload AS json), CAST(:metadata AS json), :occurred_at,"
    " :recorded_at, :prev_hash, :hash)"
)
_MOVE_HEAD = text("UPDATE log_head SET position = :position, hash = :hash WHERE singleton")
_COLUMNS = (
    "position, stream_id, stream_version, event_id, event_type, schema_version, payload::text AS payload,"
    " metadata::text AS metadata, occurred_at, recorded_at, prev_hash, hash"
)


def _is_lock_timeout(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) == "55P03"


class PostgresEventStore:
    """The event log on PostgreSQL. Thread-safe; every call uses its own pooled connection."""

    def __init__(
        self, engine: Engine, *, upcasters: Upcasters | None = None, projectors: Sequence[Projector] = ()
    ) -> None:
        self.engine = engine
        self.upcasters = upcasters or Upcasters()
        self.projectors = tuple(projectors)

    # -- writing -------------------------------------------------------------------------------------

    def append(self, stream_id: str, events: Sequence[NewEvent], *, expected_version: int | None) -> AppendResult:
        """Append `events` to `stream_id` atomically, if the stream is at `expected_version` (None: any)."""
        if not events:
            raise ValueError("append needs at least one event")
        if len({e.event_id for e in events}) != len(events):
            raise EventIdConflict("the same event id appears twice in one append")
        try:
            with self.engine.begin() as connection:
                return self._append(connection, stream_id, events, expected_version)
        except OperationalError as error:
            if _is_lock_timeout(error):
                raise StoreBusy("the event log is busy (append lock not granted in time); retry") from None
            raise StoreUnavailable(f"PostgreSQL is unavailable: {str(error.orig).strip().splitlines()[0]}") from None

    def _append(
        self, connection: Connection, stream_id: str, events: Sequence[NewEvent], expected_version: int | None
    ) -> AppendResult:
        head = connection.execute(_LOCK_HEAD).one()
        payloads = [canonical_json(e.payload) for e in events]
        existing = connection.execute(_EXISTING, {"ids": [e.event_id for e in events]}).all()
        if existing:
            return self._replayed(stream_id, events, payloads, existing)
        version = connection.execute(_STREAM_VERSION, {"stream_id": stream_id}).scalar_one()
        if expected_version is not None and version != expected_version:
            raise ConcurrencyError(stream_id, expected_version, version)
        position, prev_hash, recorded_at = head.position, bytes(head.hash), head.now
        rows: list[dict[str, Any]] = []
        stored: list[StoredEvent] = []
        for event, payload in zip(events, payloads, strict=True):
            position += 1
            version += 1
            metadata = canonical_json(event.metadata.as_dict())
            digest = event_hash(
                prev_hash,
                position=position,
                stream_id=stream_id,
                stream_version=version,
                event_id=str(event.event_id),
                event_type=event.event_type,
                schema_version=event.schema_version,
                occurred_at=event.occurred_at,
                recorded_at=recorded_at,
                payload_json=payload,
                metadata_json=metadata,
            )
            rows.append(
                {
                    "position": position,
                    "stream_id": stream_id,
                    "stream_version": version,
                    "event_id": event.event_id,
                    "event_type": event.event_type,
                    "schema_version": event.schema_version,
                    "payload": payload,
                    "metadata": metadata,
                    "occurred_at": event.occurred_at,
                    "recorded_at": recorded_at,
                    "prev_hash": prev_hash,
                    "hash": digest,
                }
            )
            stored.append(
                self._upcast(
                    StoredEvent(
                        position, stream_id, version, event.event_id, event.event_type, event.schema_version,
                        json.loads(payload), event.metadata, event.occurred_at, recorded_at, prev_hash, digest,
                    )
                )
            )  # fmt: skip
            prev_hash = digest
        connection.execute(_INSERT, rows)
        connection.execute(_MOVE_HEAD, {"position": position, "hash": prev_hash})
        for projector in self.projectors:
            projector.apply(connection, stored)
        return AppendResult(tuple(r["position"] for r in rows), version)

    @staticmethod
    def _replayed(stream_id: str, events: Sequence[NewEvent], payloads: list[str], existing: Sequence[Any]) -> AppendResult:
        """An append whose ids are already stored: a no-op if it is the same append, else a conflict."""
        by_id = {row.event_id: row for row in existing}
        for event, payload in zip(events, payloads, strict=True):
            row = by_id.get(event.event_id)
            if row is None:
                raise EventIdConflict("an append mixes event ids already stored with new ones")
            same = (
                row.stream_id == stream_id
                and row.event_type == event.event_type
                and row.schema_version == event.schema_version
                and row.payload == payload
                and row.occurred_at == event.occurred_at
            )
            if not same:
                raise EventIdConflict(f"event id {event.event_id} is already stored with different content")
        return AppendResult(tuple(row.position for row in existing), max(r.stream_version for r in existing), True)

    # -- reading -------------------------------------------------------------------------------------

    def _upcast(self, event: StoredEvent) -> StoredEvent:
        version, payload = self.upcasters.upcast(event.event_type, event.schema_version, event.payload)
        if version == event.schema_version:
            return event
        return StoredEvent(
            event.position, event.stream_id, event.stream_version, event.event_id, event.event_type, version,
            payload, event.metadata, event.occurred_at, event.recorded_at, event.prev_hash, event.hash,
        )  # fmt: skip

    def _row_to_event(self, row: Any) -> StoredEvent:
        return self._upcast(
            StoredEvent(
                position=row.position,
                stream_id=row.stream_id,
                stream_version=row.stream_version,
                event_id=row.event_id if isinstance(row.event_id, UUID) else UUID(str(row.event_id)),
                event_type=row.event_type,
                schema_version=row.schema_version,
                payload=json.loads(row.payload),
                metadata=EventMetadata(**json.loads(row.metadata)),
                occurred_at=row.occurred_at,
                recorded_at=row.recorded_at,
                prev_hash=bytes(row.prev_hash),
                hash=bytes(row.hash),
            )
        )

    def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        recorded_until: datetime | None = None,
    ) -> list[StoredEvent]:
        """A stream's events in order, optionally only up to a version or to what was recorded by an instant."""
        query = f"SELECT {_COLUMNS} FROM events WHERE stream_id = :stream_id AND stream_version >= :from_version"
        params: dict[str, Any] = {"stream_id": stream_id, "from_version": from_version}
        if to_version is not None:
            query += " AND stream_version <= :to_version"
            params["to_version"] = to_version
        if recorded_until is not None:
            query += " AND recorded_at <= :until"
            params["until"] = recorded_until
        with self.engine.connect() as connection:
            rows = connection.execute(text(query + " ORDER BY stream_version"), params).all()
        return [self._row_to_event(row) for row in rows]

    def read_all(self, *, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """One page of the whole log, in position order, after `after_position`."""
        query = text(f"SELECT {_COLUMNS} FROM events WHERE position > :after ORDER BY position LIMIT :limit")
        with self.engine.connect() as connection:
            rows = connection.execute(query, {"after": after_position, "limit": limit}).all()
        return [self._row_to_event(row) for row in rows]

    def iter_all(self, *, after_position: int = 0, page_size: int = 5000) -> Iterator[StoredEvent]:
        """Every event after `after_position`, page by page."""
        while page := self.read_all(after_position=after_position, limit=page_size):
            yield from page
            after_position = page[-1].position

    def stream_version(self, stream_id: str) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(_STREAM_VERSION, {"stream_id": stream_id}).scalar_one())

    def head_position(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(text("SELECT position FROM log_head")).scalar_one())
