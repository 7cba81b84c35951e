"""PostgresEventStore: the append-only, hash-chained event log.

Guarantees (each tested in tests/integration/test_event_store.py):
- Appends are serialized by a row lock on `log_head`, so positions are gapless and increase in commit
  order: a reader following positions never misses an event committed later into a lower position.
  Cost: one append commits at a time (throughput is bounded by commit latency; batches amortise it).
- An append states the stream version it expects; any other version raises ConcurrencyError.
- An event id already stored with the same content (stream, type, version, payload, occurred_at) is a
  no-op that returns the stored positions, so activity retries never duplicate; different content raises
  EventIdConflict. `append_or_recall` answers an append that finds its stream past the version it expects
  with the events past it, as first recorded, and writes nothing (tested in test_local_recording.py).
- Projections are updated in the append's transaction (they never lag or run ahead of the log).
- The database refuses UPDATE, DELETE and TRUNCATE on `events`.
- Group commit: appends that arrive while another is being committed (from other threads of this
  process) are gathered into one transaction, one lock of `log_head` and one step of the chain (see
  `_GroupCommit`); each caller still gets its own positions, and its own expected-version and idempotency
  outcome, exactly as if it had appended alone. A lone append takes the one-statement path. Under load a
  leader waits to gather as many callers as the last commit cycle had, at most as long as that commit took
  (never over MAX_GATHER); a lone writer never waits.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any, Protocol
from uuid import UUID

import psycopg
import structlog
from psycopg.rows import dict_row
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from continuum.eventlog.errors import ConcurrencyError, EventIdConflict, StoreBusy, StoreUnavailable
from continuum.eventlog.hashing import canonical_json
from continuum.eventlog.records import AppendResult, EventMetadata, NewEvent, StoredEvent
from continuum.eventlog.upcasting import Upcasters, product_upcasters


@dataclass(frozen=True)
class InlineProjection:
    """A projector's write folded into the append statement itself (one round trip for the common case).

    `sql` defines data-modifying CTEs, the last named `projected`, that read `appended` (the append's outcome row)
    and applies only
    when the stream stood at `prior_version` before the append, so an optimistic state is never written
    over a newer one. It is sent to psycopg as is: placeholders are `%(p_name)s`, names start with `p_`.
    """

    sql: str
    params: dict[str, Any]
    prior_version: int
    confirm: Callable[[], None]


class Projector(Protocol):
    """A read model kept in step with the log inside the append transaction."""

    name: str

    def plan(self, connection: Connection, stream_id: str, events: Sequence[NewEvent]) -> InlineProjection | None:
        """An optimistic write to run inside the append statement, or None to use `apply` instead."""

    def apply(self, connection: Connection, events: Sequence[StoredEvent]) -> None:
        """Fold `events` (just appended, in one stream's order) into the read model, in the same transaction."""

    def forget(self, stream_id: str) -> None:
        """Drop anything cached about `stream_id` (its append did not commit)."""


# The append is sent to psycopg directly (pyformat placeholders, prepared on the server): it is the hot path.
log = structlog.get_logger(__name__)

_APPEND_CALL = (
    "SELECT * FROM continuum_append(%(stream_id)s, %(expected_version)s, %(event_ids)b::uuid[],"
    " %(event_types)b::text[],"
    " %(schema_versions)b::integer[], %(payloads)b::text[], %(metadata)b::text[], %(occurred_at)b::timestamptz[])"
)  # the arrays go in binary: psycopg's text format escapes every element of every JSON text
# Only what the caller needs: decoding the hash arrays costs more than the round trip's own work.
_OUTCOME = ("outcome", "first_position", "stream_version")
_APPEND_OUTCOME = _APPEND_CALL.replace("*", ", ".join(_OUTCOME), 1)
# Several callers' appends in one statement (migrations 0010, 0017): one row per append, in the order given.
_APPEND_BATCH = (
    "SELECT append_index, outcome, first_position, stream_version, recorded_at, prev_hashes, hashes"
    " FROM continuum_append_batch(%(stream_ids)b::text[], %(expected_versions)b::integer[], %(counts)b::integer[],"
    " %(event_ids)b::uuid[], %(event_types)b::text[], %(schema_versions)b::integer[], %(payloads)b::text[],"
    " %(metadata)b::text[], %(occurred_at)b::timestamptz[]) ORDER BY append_index"
)
_APPEND_BATCH_OUTCOME = _APPEND_BATCH.replace(", recorded_at, prev_hashes, hashes", "", 1)  # the log alone
_ANY_VERSION = -1  # the batch function's spelling of expected_version=None
_BATCH_ARRAYS = ("event_ids", "event_types", "schema_versions", "payloads", "metadata", "occurred_at")
MAX_GROUP = 64  # appends per group commit: bounds one transaction's size and the statement's parameters
MAX_GATHER = 0.005  # seconds a leader may wait for the callers of the last commit to come back
_NOBODY_GATHERS = MAX_GROUP + 1
_UNIQUE_VIOLATION = "23505"
_STALE_PROJECTION = "CN001"  # raised by continuum_abort: the optimistic projection state was not current
_EXISTING = text(
    "SELECT event_id, stream_id, event_type, schema_version, payload::text AS payload, occurred_at, position,"
    " stream_version FROM events WHERE event_id = ANY(:ids) ORDER BY position"
)
_ANY_STORED = text("SELECT EXISTS (SELECT 1 FROM events WHERE event_id = ANY(:ids))")
_STREAM_VERSION = text("SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = :stream_id")
_COLUMNS = (
    "position, stream_id, stream_version, event_id, event_type, schema_version, payload::text AS payload,"
    " metadata::text AS metadata, occurred_at, recorded_at, prev_hash, hash"
)
_ENVELOPES = text(
    "SELECT position, stream_id, event_type, schema_version, payload::text FROM events"
    " WHERE position > :after AND position <= :until ORDER BY position LIMIT :limit"
)
_ENVELOPES_SHARE = text(
    "SELECT position, stream_id, event_type, schema_version, payload::text FROM events"
    " WHERE position > :after AND position <= :until AND mod(abs(hashtext(stream_id)::bigint), :n) = :k"
    " ORDER BY position LIMIT :limit"
)
_PAGE = text(f"SELECT {_COLUMNS} FROM events WHERE position > :after ORDER BY position LIMIT :limit")


@functools.cache
def _with_projection(projection_sql: str) -> str:
    """The append and a projector's inline write as one statement; aborts if the write did not apply."""
    return (
        f"WITH appended AS MATERIALIZED ({_APPEND_CALL}), {projection_sql} "
        f"SELECT {', '.join(f'a.{column}' for column in _OUTCOME)}, CASE WHEN a.outcome = 'appended'"
        " AND NOT EXISTS (SELECT 1 FROM projected) THEN continuum_abort('projection state not current') ELSE 1 END"
        " AS guard FROM appended a"
    )


def _execute_one(connection: Connection, sql: str, params: dict[str, Any]) -> Any:
    """One row of `sql`, run by psycopg itself on `connection`'s driver connection, prepared on the server.

    SQLAlchemy's statement and result machinery costs about as much as the append's own round trip, so
    the hot path skips it; errors are re-raised as SQLAlchemy's, as if it had run the statement.
    """
    return _execute_all(connection, sql, params)[0]


def _execute_all(connection: Connection, sql: str, params: dict[str, Any]) -> list[Any]:
    """Every row of `sql`, as `_execute_one` runs it."""
    driver = connection.connection.driver_connection
    assert driver is not None
    try:
        with driver.cursor(row_factory=dict_row) as cursor:
            rows = cursor.execute(sql, params, prepare=True).fetchall()
    except psycopg.Error as error:
        raise DBAPIError.instance(sql, params, error, psycopg.Error, hide_parameters=True) from None
    return [SimpleNamespace(**row) for row in rows]  # attribute access, without a namedtuple class per call


class _Wake:
    """A one-time wake-up: a lock taken at creation, released by the waker (a threading.Event costs a
    Condition, and a lock more at each wait, on the hot path of every queued append)."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def set(self) -> None:
        self._lock.release()

    def wait(self) -> None:
        self._lock.acquire()


@dataclass(eq=False)
class _Append:
    """One caller's append, waiting to be committed (alone or in a group), then its outcome."""

    stream_id: str
    events: Sequence[NewEvent]
    payloads: list[str]
    params: dict[str, Any]
    woken: _Wake = field(default_factory=_Wake)
    group: list[_Append] | None = None  # set when this caller is to commit a group (its own append first)
    outcome: AppendResult | None = None
    error: BaseException | None = None

    def settle(self, run: Callable[[_Append], AppendResult]) -> None:
        try:
            self.outcome = run(self)
        except BaseException as error:  # handed to the caller's own thread, which raises it
            self.error = error

    def result(self) -> AppendResult:
        if self.error is not None:
            raise self.error
        assert self.outcome is not None
        return self.outcome


class _GroupCommit:
    """Leader and followers: while one caller commits, the appends that arrive wait; when its commit is done,
    the first of them commits all that waited (up to MAX_GROUP) in one transaction and hands over in turn.

    A leader gathers before it commits, for as many callers as the last commit served (with those that waited
    for it), and at most as long as that commit took (never over MAX_GATHER): under load the callers just
    served come straight back, and one group takes them all instead of two half groups taking turns. A lone
    caller (the last commit served one) commits at once, so the batch size follows the load by itself.
    """

    def __init__(
        self,
        alone: Callable[[_Append], AppendResult],
        together: Callable[[list[_Append], Callable[[], None]], None],
    ) -> None:
        self._alone = alone
        self._together = together
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._waiting: list[_Append] = []
        self._busy = False
        self._callers = 1  # callers of the last commit cycle: how many the next leader gathers for
        self._gather_for = 0.0  # seconds the last commit took: the longest the next leader gathers
        self._wanted = _NOBODY_GATHERS  # appends waiting that the gathering leader wants (one wake-up, not one each)

    def submit(self, append: _Append) -> AppendResult:
        with self._lock:
            lead = not self._busy
            if lead:
                self._busy = True
            else:
                self._waiting.append(append)
                if len(self._waiting) >= self._wanted:  # the gathering leader has all it waits for
                    self._arrived.notify()
        if lead:
            self._lead([append])
        else:
            append.woken.wait()
            if append.group is not None:
                self._lead(append.group)
        return append.result()

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    def _lead(self, group: list[_Append]) -> None:
        """Commit `group` (its first append is this caller's own), with the appends gathered meanwhile."""
        group = self._gather(group)
        started = time.monotonic()
        if len(group) == 1:
            try:
                group[0].settle(self._alone)
            finally:
                self._hand_over(1, started)
        else:
            self._together(group, functools.partial(self._hand_over, len(group), started))

    def _gather(self, group: list[_Append]) -> list[_Append]:
        with self._lock:
            deadline = time.monotonic() + self._gather_for
            self._wanted = min(self._callers, MAX_GROUP) - len(group)
            while len(self._waiting) < self._wanted:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.wait(left)
            self._wanted = _NOBODY_GATHERS
            room = MAX_GROUP - len(group)
            taken, self._waiting = self._waiting[:room], self._waiting[room:]
        return group + taken

    def _hand_over(self, served: int, started: float) -> None:
        with self._lock:
            self._gather_for = min(time.monotonic() - started, MAX_GATHER)
            self._callers = served + len(self._waiting)
            if not self._waiting:
                self._busy = False
                return
            group, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
            group[0].group = group
        group[0].woken.set()


def _is_lock_timeout(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) == "55P03"


class PostgresEventStore:
    """The event log on PostgreSQL. Thread-safe; every call uses its own pooled connection."""

    def __init__(
        self,
        engine: Engine,
        *,
        upcasters: Upcasters | None = None,
        projectors: Sequence[Projector] = (),
        group_commit: bool = True,
    ) -> None:
        self.engine = engine
        self.upcasters = upcasters if upcasters is not None else product_upcasters()
        self.projectors = tuple(projectors)
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._group = _GroupCommit(self._append_alone, self._append_together) if group_commit else None

    # -- writing -------------------------------------------------------------------------------------

    def appends_waiting(self) -> int:
        """How many appends are queued behind the commit in progress (for metrics and tests)."""
        return self._group.waiting() if self._group else 0

    def append(self, stream_id: str, events: Sequence[NewEvent], *, expected_version: int | None) -> AppendResult:
        """Append `events` to `stream_id` atomically, if the stream is at `expected_version` (None: any)."""
        if not events:
            raise ValueError("append needs at least one event")
        if len({e.event_id for e in events}) != len(events):
            raise EventIdConflict("the same event id appears twice in one append")
        payloads = [canonical_json(e.payload) for e in events]
        if any(e.occurred_at.tzinfo is None for e in events):
            raise ValueError("occurred_at must carry a time zone")
        params: dict[str, Any] = {
            "stream_id": stream_id,
            "expected_version": expected_version,
            "event_ids": [e.event_id for e in events],
            "event_types": [e.event_type for e in events],
            "schema_versions": [e.schema_version for e in events],
            "payloads": payloads,  # the exact text to store and hash
            "metadata": [canonical_json(e.metadata.as_dict()) for e in events],
            "occurred_at": [e.occurred_at for e in events],
        }
        append = _Append(stream_id, events, payloads, params)
        if self._group is None:
            return self._append_alone(append)
        return self._group.submit(append)

    def append_or_recall(self, stream_id: str, events: Sequence[NewEvent], *, expected_version: int) -> AppendResult:
        """Append as `append` does, but answer a stream that stands past `expected_version` with the events past
        it (`recalled`), as first recorded, instead of refusing: for a writer that is the stream's only one
        and may repeat an append it never saw acknowledged (a local activity in a workflow task the server
        refused), with a decision that can differ the second time. The writer folds what the log answered.

        The check stays per append: nothing is written unless the stream is at `expected_version`; an
        identical repeat is recalled as well, so the writer folds what the log holds past its version whatever
        else landed there. A stream behind `expected_version`, or a conflict with no events past it, is refused
        as `append` refuses it."""
        try:
            result = self.append(stream_id, events, expected_version=expected_version)
        except (ConcurrencyError, EventIdConflict):
            recalled = self.read_stream(stream_id, from_version=expected_version + 1)
            if not recalled:
                raise
        else:
            if not result.duplicate:
                return result
            recalled = self.read_stream(stream_id, from_version=expected_version + 1)
            if not recalled:  # stored at or below the version expected: the writer folded them already
                return result
        positions = tuple(event.position for event in recalled)
        return AppendResult(positions, recalled[-1].stream_version, duplicate=True, recalled=tuple(recalled))

    def _append_alone(self, append: _Append) -> AppendResult:
        """One caller's append in its own statement (or transaction), with every outcome settled."""
        stream_id, events, payloads, params = append.stream_id, append.events, append.payloads, append.params
        try:
            try:
                outcome = self._append_in_one_statement(stream_id, events, payloads, params)
            except IntegrityError as error:
                if getattr(error.orig, "sqlstate", None) != _UNIQUE_VIOLATION:
                    raise
                outcome = self._replayed_from_store(stream_id, events, payloads)  # nothing was written
            except DBAPIError as error:
                if getattr(error.orig, "sqlstate", None) != _STALE_PROJECTION:
                    raise
                outcome = None  # nothing was written; fold on the stored state instead
            if outcome is None:
                for projector in self.projectors:
                    projector.forget(stream_id)
                try:
                    with self.engine.begin() as connection:
                        outcome = self._append_in_transaction(connection, stream_id, events, payloads, params)
                except IntegrityError as error:
                    if getattr(error.orig, "sqlstate", None) != _UNIQUE_VIOLATION:
                        raise
                    outcome = self._replayed_from_store(stream_id, events, payloads)
        except ConcurrencyError:
            # A retry of an append that already landed also finds the stream moved on: recognise it first.
            if self._stored_already(events):
                return self._replayed_from_store(stream_id, events, payloads)
            raise
        except OperationalError as error:
            if _is_lock_timeout(error):
                raise StoreBusy("the event log is busy (append lock not granted in time); retry") from None
            raise StoreUnavailable(f"PostgreSQL is unavailable: {str(error.orig).strip().splitlines()[0]}") from None
        except BaseException:
            for projector in self.projectors:
                projector.forget(stream_id)
            raise
        return outcome

    def _append_together(self, group: list[_Append], committed: Callable[[], None]) -> None:
        """Commit `group` in one transaction, call `committed` (the next group may go), then settle one by one the
        appends it could not take (a stream not at its expected version, an event id stored already, or any
        failure of the whole)."""
        try:
            if len(group) > 1:
                try:
                    self._append_batch(group)
                except BaseException as error:  # nothing of the group was written: each is tried alone, for its outcome
                    # The class and SQLSTATE only: a driver's message can quote the values of a row.
                    log.warning(
                        "eventlog.group_commit_failed",
                        appends=len(group),
                        error=type(error).__name__,
                        sqlstate=getattr(getattr(error, "orig", None), "sqlstate", None),
                    )
                    for append in group:
                        for projector in self.projectors:
                            projector.forget(append.stream_id)
        finally:
            committed()
        left = [append for append in group if append.outcome is None]
        for append in group[1:]:  # the appended first: their callers need nothing more
            if append.outcome is not None:
                append.woken.set()
        for append in left:
            append.settle(self._append_alone)
            if append is not group[0]:
                append.woken.set()

    def _append_batch(self, group: list[_Append]) -> None:
        """Several streams' appends in one statement and one transaction; outcomes set once it committed."""
        params: dict[str, Any] = {
            "stream_ids": [a.stream_id for a in group],
            "expected_versions": [
                _ANY_VERSION if a.params["expected_version"] is None else a.params["expected_version"] for a in group
            ],
            "counts": [len(a.events) for a in group],
        }
        for name in _BATCH_ARRAYS:
            params[name] = [value for a in group for value in a.params[name]]
        outcomes: list[tuple[_Append, AppendResult]] = []
        # The log alone: one autocommitted statement (the function is atomic); with projectors, a transaction.
        with self._autocommit.connect() if not self.projectors else self.engine.begin() as connection:
            stored: list[StoredEvent] = []
            for row in _execute_all(connection, _APPEND_BATCH if self.projectors else _APPEND_BATCH_OUTCOME, params):
                if row.outcome != "appended":
                    continue  # conflict or exists: settled alone, after this commit, like any single append
                append = group[row.append_index - 1]
                first = row.first_position
                outcomes.append(
                    (append, AppendResult(tuple(range(first, first + len(append.events))), row.stream_version))
                )
                if self.projectors:
                    stored.extend(self._stored(append.stream_id, append.events, append.payloads, row))
            if stored:
                for projector in self.projectors:
                    projector.apply(connection, stored)
        for append, outcome in outcomes:
            append.outcome = outcome

    def _append_in_one_statement(
        self, stream_id: str, events: Sequence[NewEvent], payloads: list[str], params: dict[str, Any]
    ) -> AppendResult | None:
        """The common case: append (and project) in a single autocommitted statement (one round trip).

        Returns None when no projector can inline its write; raises CN001 (and writes nothing) when the
        projector's optimistic state turns out not to be the stored one.
        """
        if len(self.projectors) > 1:
            return None
        with self._autocommit.connect() as connection:
            if not self.projectors:  # the log alone
                result = _execute_one(connection, _APPEND_OUTCOME, params)
                return self._outcome(stream_id, result, params["expected_version"], len(events))
            plan = self.projectors[0].plan(connection, stream_id, events)
            if plan is None:
                return None
            result = _execute_one(connection, _with_projection(plan.sql), {**params, **plan.params})
            outcome = self._outcome(stream_id, result, params["expected_version"], len(events))
            plan.confirm()
            return outcome

    def _append_in_transaction(
        self,
        connection: Connection,
        stream_id: str,
        events: Sequence[NewEvent],
        payloads: list[str],
        params: dict[str, Any],
    ) -> AppendResult:
        result = _execute_one(connection, _APPEND_CALL, params)
        outcome = self._outcome(stream_id, result, params["expected_version"], len(events))
        stored = self._stored(stream_id, events, payloads, result)
        for projector in self.projectors:
            projector.apply(connection, stored)
        return outcome

    @staticmethod
    def _outcome(stream_id: str, result: Any, expected_version: int | None, count: int) -> AppendResult:
        if result.outcome == "conflict":
            raise ConcurrencyError(stream_id, expected_version or 0, result.stream_version)
        first = result.first_position
        return AppendResult(tuple(range(first, first + count)), result.stream_version)

    def _stored(
        self, stream_id: str, events: Sequence[NewEvent], payloads: list[str], result: Any
    ) -> list[StoredEvent]:
        first_version = result.stream_version - len(events) + 1
        return [
            self._upcast(
                StoredEvent(
                    result.first_position + i,
                    stream_id,
                    first_version + i,
                    event.event_id,
                    event.event_type,
                    event.schema_version,
                    json.loads(payload),
                    event.metadata,
                    event.occurred_at,
                    result.recorded_at,
                    bytes(result.prev_hashes[i]),
                    bytes(result.hashes[i]),
                )
            )
            for i, (event, payload) in enumerate(zip(events, payloads, strict=True))
        ]

    def _stored_already(self, events: Sequence[NewEvent]) -> bool:
        with self.engine.connect() as connection:
            return bool(connection.execute(_ANY_STORED, {"ids": [e.event_id for e in events]}).scalar_one())

    def _replayed_from_store(self, stream_id: str, events: Sequence[NewEvent], payloads: list[str]) -> AppendResult:
        with self.engine.connect() as connection:
            existing = connection.execute(_EXISTING, {"ids": [e.event_id for e in events]}).all()
        if not existing:  # the unique violation was not on event_id (cannot happen under the log lock)
            raise EventIdConflict("the append collided with a concurrent one; retry")
        return self._replayed(stream_id, events, payloads, existing)

    @staticmethod
    def _replayed(
        stream_id: str, events: Sequence[NewEvent], payloads: list[str], existing: Sequence[Any]
    ) -> AppendResult:
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
            event.position,
            event.stream_id,
            event.stream_version,
            event.event_id,
            event.event_type,
            version,
            payload,
            event.metadata,
            event.occurred_at,
            event.recorded_at,
            event.prev_hash,
            event.hash,
        )

    def _row_to_event(self, row: Any, *, upcast: bool = True) -> StoredEvent:
        event = StoredEvent(
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
        return self._upcast(event) if upcast else event

    def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        recorded_until: datetime | None = None,
        as_recorded: bool = False,
    ) -> list[StoredEvent]:
        """A stream's events in order, optionally only up to a version or to what was recorded by an instant;
        upcast to their current schema versions, or `as_recorded` (what the hashes cover, for exports)."""
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
        return [self._row_to_event(row, upcast=not as_recorded) for row in rows]

    def read_page(self, connection: Connection, *, after_position: int, limit: int) -> list[StoredEvent]:
        """One page of the whole log, in position order, after `after_position`, on a connection the caller
        holds (inside its own transaction)."""
        rows = connection.execute(_PAGE, {"after": after_position, "limit": limit}).all()
        return [self._row_to_event(row) for row in rows]

    def read_envelopes(
        self,
        connection: Connection,
        *,
        after_position: int,
        until_position: int,
        limit: int,
        share: tuple[int, int] = (0, 1),
    ) -> list[tuple[int, str, str, int, dict[str, Any]]]:
        """One page of the log's events as (position, stream, type, schema version, payload), upcast, in position
        order after `after_position` up to `until_position`: what a reader of whole histories needs, lean. With
        `share` (k, n), only the streams whose id hashes to k modulo n (so n readers split the log)."""
        params = {"after": after_position, "until": until_position, "limit": limit, "k": share[0], "n": share[1]}
        rows = connection.execute(_ENVELOPES if share[1] == 1 else _ENVELOPES_SHARE, params).all()
        page = []
        for position, stream_id, event_type, schema_version, payload in rows:
            version, data = self.upcasters.upcast(event_type, schema_version, json.loads(payload))
            page.append((position, stream_id, event_type, version, data))
        return page

    def stream_version(self, stream_id: str) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(_STREAM_VERSION, {"stream_id": stream_id}).scalar_one())

    def head_position(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(text("SELECT position FROM log_head")).scalar_one())
