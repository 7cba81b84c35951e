"""Outcome measures read from the log at a stated position, with the hash there, so a report can be recomputed
and checked against the chain.

The log is read once, in position order, in one snapshot, up to the position asked (the head by default),
and grouped per episode. Only the event types `domain.measures` reads are decoded and kept, so memory grows
with those events, not with every flag and schedule draw; the policy versions are taken from every event.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, text

from continuum.domain.codec import EventEnvelope, from_envelope
from continuum.domain.events import EVENT_TYPES, DomainEvent
from continuum.domain.measures import DAY, MEASURED_EVENT_TYPES, Grouping, Measures, MeasuresError, Period
from continuum.domain.measures import compute_measures as compute
from continuum.eventlog.hashing import GENESIS_HASH
from continuum.eventlog.store import PostgresEventStore
from continuum.eventlog.verify import Anchor, VerificationReport, verify_log

PAGE_SIZE = 5000
_HEAD = text("SELECT position FROM log_head")
_HASH_AT = text("SELECT hash FROM events WHERE position = :position")
_PAGE = text(
    "SELECT position, stream_id, event_type, schema_version, payload, occurred_at FROM events"
    " WHERE position > :after AND position <= :upto ORDER BY position LIMIT :limit"
)


@dataclass(frozen=True)
class MeasuresReport:
    """Measures as computed at `position` (the global position of the last event included), whose chain hash
    is `head_hash`: `verify_report` checks it, `measures_at(..., position=position)` recomputes it."""

    measures: Measures
    position: int
    head_hash: str  # hex; the genesis hash for an empty log
    day_seconds: float = DAY.total_seconds()  # the care day the durations and windows count in

    @property
    def anchor(self) -> Anchor:
        return Anchor(self.position, self.head_hash, name=f"the measures report at position {self.position}")


_AT_FACILITIES = text("SELECT episode_id FROM episodes WHERE facility = ANY(:scope)")


def measures_at(
    store: PostgresEventStore,
    period: Period,
    *,
    by: Sequence[Grouping] = (),
    position: int | None = None,
    day: timedelta = DAY,
    facilities: Collection[str] | None = None,
) -> MeasuresReport:
    """The measures over `period` from every episode's events up to `position` (None: the head now); with
    `facilities`, from the episodes at those facilities alone."""
    histories: dict[str, list[DomainEvent]] = {}
    versions: dict[str, set[str]] = {}  # by episode: a reader of some facilities learns only their policies
    observed_until: datetime | None = None
    with store.engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection, connection.begin():
        head = int(connection.execute(_HEAD).scalar_one())
        if position is None:
            position = head
        elif position > head:
            raise MeasuresError("at", f"the log holds positions up to {head}, not {position}")
        if position == 0:
            head_hash = GENESIS_HASH.hex()
        else:
            head_hash = bytes(connection.execute(_HASH_AT, {"position": position}).scalar_one()).hex()
        after = 0
        while rows := connection.execute(_PAGE, {"after": after, "upto": position, "limit": PAGE_SIZE}).all():
            for row in rows:
                if row.event_type not in EVENT_TYPES:
                    continue
                if observed_until is None or row.occurred_at > observed_until:
                    observed_until = row.occurred_at
                version = row.payload.get("policy_version")
                if version:
                    versions.setdefault(row.stream_id, set()).add(version)
                if row.event_type in MEASURED_EVENT_TYPES:
                    schema_version, payload = store.upcasters.upcast(row.event_type, row.schema_version, row.payload)
                    envelope = EventEnvelope(row.event_type, schema_version, payload)
                    histories.setdefault(row.stream_id, []).append(from_envelope(envelope))
            after = rows[-1].position
        if facilities is not None:
            at = set(connection.execute(_AT_FACILITIES, {"scope": sorted(facilities)}).scalars())
            histories = {stream: events for stream, events in histories.items() if stream in at}
            versions = {stream: found for stream, found in versions.items() if stream in at}
    measures = compute(histories.values(), period, by=by, day=day, observed_until=observed_until)
    read = set().union(*versions.values()) if versions else set()
    measures = dataclasses.replace(measures, policy_versions=tuple(sorted(read | set(measures.policy_versions))))
    return MeasuresReport(measures, position, head_hash, day.total_seconds())


def verify_report(engine: Engine, position: int, head_hash: str) -> VerificationReport:
    """Check the whole chain, and that it still holds `head_hash` at `position` (the report's anchor)."""
    return verify_log(engine, anchors=[Anchor(position, head_hash, name=f"the measures report at position {position}")])
