"""Recording events: the one activity through which workflows write to the event store (and the one that
folds a closed episode's stream for a run that takes it up again).

Event ids are minted deterministically in the workflow, so a retried activity finds its events already
stored and returns their positions instead of writing them twice. A request with `recall` (an episode's, since
recording became a local activity) is answered, when the stream stands past the version it expects, with the
events past it as first recorded: the workflow folds those (the log leads) instead of a decision it may have
made differently in a workflow task the server refused.

A value that cannot be stored (PostgreSQL refuses it as data, or it cannot be serialized) fails the
activity at once as `UnrecordableEvent`, not retryable, since no retry can store it; the workflow then
refuses the command and the episode stays usable. Transient errors (the database down, a connection
reset, a serialization failure, the append lock not granted) keep being retried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
import structlog
from sqlalchemy.exc import StatementError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from continuum.domain.codec import encode
from continuum.domain.errors import DomainError
from continuum.eventlog.errors import ConcurrencyError, EventIdConflict
from continuum.eventlog.projection import episode_as_of
from continuum.eventlog.records import EventMetadata, NewEvent
from continuum.eventlog.store import PostgresEventStore
from continuum.runtime.failures import database_error, safe_message

log = structlog.get_logger(__name__)
UNRECORDABLE = "UnrecordableEvent"
# What a retry cannot fix: PostgreSQL refusing a value as data (SQLSTATE class 22: a NUL in jsonb, an
# invalid or out-of-range timestamp or number, ...) or as too large (54), and a value that cannot be
# serialized at all (ValueError: NaN, an unpaired surrogate, an instant outside years 1-9999; OverflowError).
_DATA_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.DataError,
    psycopg.errors.ProgramLimitExceeded,
    ValueError,
    OverflowError,
)


@dataclass(frozen=True)
class EventToRecord:
    """A domain event in its tagged envelope, with the id the workflow minted for it."""

    event_id: str
    type: str
    schema_version: int
    data: dict[str, Any]
    occurred_at: datetime


@dataclass(frozen=True)
class RecordEventsInput:
    stream_id: str
    expected_version: int | None
    events: list[EventToRecord]
    actor: str | None = None
    causation_id: str | None = None
    correlation_id: str | None = None
    recall: bool = False  # answer a stream past expected_version with its events past it (needs a version)


@dataclass(frozen=True)
class RecalledEvent:
    """An event the stream already held past the version the request expected, upcast, with its command."""

    type: str
    schema_version: int
    data: dict[str, Any]
    occurred_at: datetime
    command_id: str | None


@dataclass(frozen=True)
class RecordEventsResult:
    positions: list[int] = field(default_factory=list)
    stream_version: int = 0
    duplicate: bool = False
    recalled: list[RecalledEvent] = field(default_factory=list)


class EventLogActivities:
    """Activities over an event store handed in by the composition root (worker.py)."""

    def __init__(self, store: PostgresEventStore) -> None:
        self._store = store

    @activity.defn(name="record_events")
    def record_events(self, request: RecordEventsInput) -> RecordEventsResult:
        """Append the events to the episode's stream; safe to retry (idempotent by event id)."""
        info = activity.info()
        metadata = EventMetadata(
            actor=request.actor,
            causation_id=request.causation_id,
            correlation_id=request.correlation_id,
            workflow_id=info.workflow_id,
            run_id=info.workflow_run_id,
        )
        events = [
            NewEvent(UUID(e.event_id), e.type, e.schema_version, e.data, e.occurred_at, metadata)
            for e in request.events
        ]
        bound = log.bind(episode_id=request.stream_id, workflow_id=info.workflow_id, attempt=info.attempt)
        try:
            if request.recall and request.expected_version is not None:
                result = self._store.append_or_recall(
                    request.stream_id, events, expected_version=request.expected_version
                )
            else:
                result = self._store.append(request.stream_id, events, expected_version=request.expected_version)
        except (ConcurrencyError, EventIdConflict, DomainError) as error:
            bound.warning("events.rejected", error_type=type(error).__name__)
            raise ApplicationError(str(error), type=type(error).__name__, non_retryable=True) from None
        except Exception as error:
            unrecordable = _unrecordable(error)
            if unrecordable is None:  # transient (or unknown): retried by the activity's retry policy
                # Told without its text (a database error's DETAIL and parameters hold row values), here, in the
                # worker's log of the failed attempt and in the workflow's history: every attempt the same.
                reason = safe_message(error) if database_error(error) else type(error).__name__
                bound.warning("events.append_failed", error_type=type(error).__name__, reason=reason)
                raise ApplicationError(
                    f"the events for episode {request.stream_id} were not recorded ({reason}); retrying",
                    type=type(error).__name__,
                ) from None
            kind, sqlstate = unrecordable
            bound.error("events.unrecordable", error_type=kind, sqlstate=sqlstate, count=len(events))
            raise unrecordable_event(request.stream_id, kind, sqlstate) from None
        bound.info(
            "events.recorded",
            count=len(events),
            first_position=result.positions[0],
            stream_version=result.stream_version,
            duplicate=result.duplicate,
            recalled=len(result.recalled),
        )
        recalled = [
            RecalledEvent(e.event_type, e.schema_version, e.payload, e.occurred_at, e.metadata.causation_id)
            for e in result.recalled
        ]
        return RecordEventsResult(list(result.positions), result.stream_version, result.duplicate, recalled)

    @activity.defn(name="load_episode")
    def load_episode(self, episode_id: str) -> dict[str, Any] | None:
        """The episode as its stream folds, for a run that takes up a closed episode (None: no such stream)."""
        state = episode_as_of(self._store, episode_id)
        return encode(state) if state is not None else None


def unrecordable_event(stream_id: str, kind: str, sqlstate: str | None) -> ApplicationError:
    """The activity's answer to events that no retry can store; its message names no value."""
    code = f", SQLSTATE {sqlstate}" if sqlstate else ""
    return ApplicationError(
        f"the events for episode {stream_id} cannot be recorded: a value in them cannot be stored"
        f" ({kind}{code}); nothing was recorded",
        {"error_type": kind, "sqlstate": sqlstate},
        type=UNRECORDABLE,
        non_retryable=True,
    )


def _unrecordable(error: BaseException) -> tuple[str, str | None] | None:
    """(error type, SQLSTATE) if `error` is a data error a retry cannot fix, else None."""
    cause = error.orig if isinstance(error, StatementError) and error.orig is not None else error
    if not isinstance(cause, _DATA_ERRORS):
        return None
    return type(cause).__name__, getattr(cause, "sqlstate", None)
