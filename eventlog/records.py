"""The store's value types: what a caller appends, and what the log hands back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class EventMetadata:
    """Who and what caused an event; ids only, never clinical content."""

    actor: str | None = None  # the service or person on whose word it was recorded, e.g. "service:lab-17"
    causation_id: str | None = None  # the command or event that caused this one
    correlation_id: str | None = None  # shared by everything one request set off
    workflow_id: str | None = None
    run_id: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "actor": self.actor,
            "causation_id": self.causation_id,
            "correlation_id": self.correlation_id,
            "run_id": self.run_id,
            "workflow_id": self.workflow_id,
        }


@dataclass(frozen=True)
class NewEvent:
    """An event to append. `event_id` is minted by the caller (deterministically, in a workflow)."""

    event_id: UUID
    event_type: str
    schema_version: int
    payload: Mapping[str, Any]
    occurred_at: datetime
    metadata: EventMetadata = field(default_factory=EventMetadata)


@dataclass(frozen=True)
class StoredEvent:
    """One row of the log: the event, where it stands, and its link in the hash chain."""

    position: int
    stream_id: str
    stream_version: int
    event_id: UUID
    event_type: str
    schema_version: int
    payload: dict[str, Any]
    metadata: EventMetadata
    occurred_at: datetime
    recorded_at: datetime
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True)
class AppendResult:
    """Where the events were stored; `duplicate` when they already were (an idempotent retry). `recalled`, from
    `append_or_recall` alone: what the stream holds past the version expected, when that is not this append."""

    positions: tuple[int, ...]
    stream_version: int
    duplicate: bool = False
    recalled: tuple[StoredEvent, ...] = ()
