"""Chain verification: recompute every hash and link, and name each place the record was altered.

Detects an edited event (its hash no longer matches its content), a deleted one (a missing position, a
broken link after it, or a head that points past the last row), an inserted or reordered one (a link that
does not match its predecessor), and a gap in a stream's versions. Needs nothing but the table itself.

What the table alone cannot show is a rewrite of the whole chain from some point on, `log_head` included,
by someone who can write as the database owner. Anchors close that: an anchor is the head (position and
hash) at an instant, kept outside the database (write-once storage, a notary, a signed message). Since
each hash commits to every event before it, a log that still verifies and still has the anchored hash at
the anchored position is, up to that position, exactly the log that was anchored. Signed checkpoints
(eventlog/checkpoints.py) are anchors taken and kept that way, and checked as anchors here.

`verify_projection` folds the episodes again from the log and names each `episodes` row that differs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text

from continuum.domain.episode import Episode
from continuum.domain.events import EVENT_TYPES
from continuum.domain.fold import evolve
from continuum.eventlog.hashing import GENESIS_HASH, event_hash
from continuum.eventlog.projection import _row as _projected_row
from continuum.eventlog.projection import episode_event
from continuum.eventlog.records import StoredEvent
from continuum.eventlog.store import PostgresEventStore

_FIELDS = (
    "e.position, e.stream_id, e.stream_version, e.event_id::text AS event_id, e.event_type, e.schema_version,"
    " e.payload::text AS payload, e.metadata::text AS metadata, e.occurred_at, e.recorded_at, e.prev_hash, e.hash"
)


@dataclass(frozen=True)
class BrokenLink:
    """One place where the record does not match its chain."""

    position: int
    stream_id: str
    problem: str
    expected_hash: str | None = None
    found_hash: str | None = None

    def describe(self) -> str:
        text_ = f"position {self.position} (stream {self.stream_id}): {self.problem}"
        if self.expected_hash is not None:
            text_ += f"; expected {self.expected_hash}, found {self.found_hash}"
        return text_


@dataclass(frozen=True)
class VerificationReport:
    scope: str
    events_checked: int
    problems: tuple[BrokenLink, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_broken(self) -> BrokenLink | None:
        return self.problems[0] if self.problems else None


class AnchorError(ValueError):
    """An anchor that cannot be read (not one taken by `take_anchor`)."""


@dataclass(frozen=True)
class Anchor:
    """The log's head at an instant; see the module's docstring."""

    position: int
    hash: str  # hex, 64 characters
    taken_at: datetime | None = None  # when it was taken, if known (named in a failure)
    name: str | None = None  # what to call it in a failure (a signed checkpoint names itself)

    def as_json(self) -> dict[str, Any]:
        taken_at = self.taken_at.isoformat() if self.taken_at else None
        return {"position": self.position, "hash": self.hash, "taken_at": taken_at}

    @classmethod
    def from_json(cls, data: Any) -> Anchor:
        """An anchor from its JSON form, or AnchorError naming what is wrong."""
        if not isinstance(data, dict):
            raise AnchorError("an anchor is a JSON object with position, hash and taken_at")
        position, hash_, taken_at = data.get("position"), data.get("hash"), data.get("taken_at")
        if not isinstance(position, int) or isinstance(position, bool) or position < 0:
            raise AnchorError("anchor position: a whole number, 0 or more")
        if not isinstance(hash_, str) or len(hash_) != 64 or any(c not in "0123456789abcdef" for c in hash_):
            raise AnchorError("anchor hash: 64 lower-case hexadecimal characters")
        if taken_at is None:
            return cls(position, hash_)
        try:
            at = datetime.fromisoformat(str(taken_at))
        except ValueError:
            raise AnchorError("anchor taken_at: an ISO-8601 instant") from None
        if at.tzinfo is None:
            raise AnchorError("anchor taken_at: the instant needs a time zone")
        return cls(position, hash_, at)


def take_anchor(engine: Engine) -> Anchor:
    """The head of the log now (position 0 and the genesis hash for an empty log)."""
    with engine.connect() as connection:
        row = connection.execute(text("SELECT position, hash, clock_timestamp() AS at FROM log_head")).one()
    return Anchor(int(row.position), bytes(row.hash).hex(), row.at.astimezone(UTC))


def check_anchors(engine: Engine, anchors: Iterable[Anchor]) -> list[BrokenLink]:
    """Each anchor whose position no longer holds its hash: the chain was rewritten up to there, or cut back."""
    problems: list[BrokenLink] = []
    with engine.connect() as connection:
        for anchor in anchors:
            if anchor.position == 0:
                if anchor.hash != GENESIS_HASH.hex():
                    problems.append(
                        BrokenLink(
                            0,
                            "-",
                            f"{anchor.name or 'anchor'} at position 0 with a hash other than the genesis hash",
                            GENESIS_HASH.hex(),
                            anchor.hash,
                        )
                    )
                continue
            row = connection.execute(
                text("SELECT stream_id, hash FROM events WHERE position = :position"), {"position": anchor.position}
            ).first()
            taken = f" taken at {anchor.taken_at.isoformat()}" if anchor.taken_at else ""
            called = anchor.name or f"the anchor{taken}"
            if row is None:
                problems.append(
                    BrokenLink(
                        anchor.position,
                        "-",
                        f"the event of {called} is gone (the log was cut back)",
                        anchor.hash,
                        None,
                    )
                )
            elif bytes(row.hash).hex() != anchor.hash:
                problems.append(
                    BrokenLink(
                        anchor.position,
                        row.stream_id,
                        f"does not match {called}: the chain was rewritten up to here",
                        anchor.hash,
                        bytes(row.hash).hex(),
                    )
                )
    return problems


def _recompute(row: Any) -> bytes:
    return event_hash(
        bytes(row.prev_hash),
        position=row.position,
        stream_id=row.stream_id,
        stream_version=row.stream_version,
        event_id=row.event_id,
        event_type=row.event_type,
        schema_version=row.schema_version,
        occurred_at=row.occurred_at,
        recorded_at=row.recorded_at,
        payload_json=row.payload,
        metadata_json=row.metadata,
    )


def _check_content(row: Any, problems: list[BrokenLink]) -> None:
    recomputed = _recompute(row)
    if recomputed != bytes(row.hash):
        problems.append(
            BrokenLink(row.position, row.stream_id, "content altered", recomputed.hex(), bytes(row.hash).hex())
        )


# The canonical encoding of eventlog.hashing, built by PostgreSQL, whose SHA-256 is native code. It is
# spelled out here rather than calling the database's `continuum_canonical` (which the append uses):
# the verifier must not trust a function stored in the database it checks, which whoever could edit
# the events could also redefine.
_SQL_HASH = (
    "sha256(prev_hash || convert_to('[' || position || ',' || to_json(stream_id)::text || ',' || stream_version"
    " || ',' || to_json(event_id::text)::text || ',' || to_json(event_type)::text || ',' || schema_version"
    " || ',\"' || to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    " || '\",\"' || to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    " || '\",' || payload::text || ',' || metadata::text || ']', 'UTF8'))"
)
_RANGE = text(
    "SELECT count(*) AS n, count(*) FILTER (WHERE NOT ok OR prev_hash IS DISTINCT FROM coalesce(previous, :genesis)"
    " OR position <> coalesce(previous_position, 0) + 1) AS bad"
    f" FROM (SELECT position, prev_hash, {_SQL_HASH} = hash AS ok, lag(hash) OVER w AS previous,"
    " lag(position) OVER w AS previous_position FROM events WHERE position >= :low AND position <= :high"
    " WINDOW w AS (ORDER BY position)) s WHERE position > :low"
)


def verify_log(
    engine: Engine, *, anchors: Iterable[Anchor] = (), max_problems: int = 100, page_size: int = 20_000
) -> VerificationReport:
    """Check the whole log: positions, links, hashes and the head, and that each anchor still holds. A fast
    pass lets PostgreSQL recompute the hashes, in parallel over position ranges of one exported snapshot;
    if it finds anything at all, the careful pass below names every broken link."""
    anchored = check_anchors(engine, anchors)
    checked = _fast_pass(engine)
    if checked is not None:
        return VerificationReport("log", checked, tuple(anchored))
    report = _careful_pass(engine, max_problems=max_problems, page_size=page_size)
    return VerificationReport(report.scope, report.events_checked, tuple(anchored) + report.problems)


def _fast_pass(engine: Engine) -> int | None:
    """The number of events if every hash, link and position holds and the head names the last event;
    None if anything does not (the careful pass then says what)."""
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as main, main.begin():
        snapshot = main.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        head = main.execute(text("SELECT position, hash FROM log_head")).one()
        last = main.execute(text("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")).first()
        if last is None:
            return 0 if head.position == 0 else None
        if (last.position, bytes(last.hash)) != (head.position, bytes(head.hash)):
            return None
        workers = max(1, min(os.cpu_count() or 1, engine.pool.size(), 4))  # type: ignore[attr-defined]
        bounds = [head.position * i // workers for i in range(workers + 1)]

        def check(low: int, high: int) -> tuple[int, int]:
            with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
                conn.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
                row = conn.execute(_RANGE, {"low": low, "high": high, "genesis": GENESIS_HASH}).one()
                return int(row.n), int(row.bad)

        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(check, bounds[:-1], bounds[1:]))
    counted = sum(n for n, _ in results)
    if any(bad for _, bad in results) or counted != head.position:
        return None
    return counted


def _careful_pass(engine: Engine, *, max_problems: int = 100, page_size: int = 20_000) -> VerificationReport:
    """Walk the whole log in position order, checking positions, links and hashes, then the head."""
    problems: list[BrokenLink] = []
    checked, expected_position, previous_hash = 0, 1, GENESIS_HASH
    # One snapshot for the rows and the head: appends committing meanwhile are simply not seen.
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection, connection.begin():
        after = 0
        while len(problems) < max_problems:
            rows = connection.execute(
                text(f"SELECT {_FIELDS} FROM events e WHERE e.position > :after ORDER BY e.position LIMIT :n"),
                {"after": after, "n": page_size},
            ).all()
            if not rows:
                break
            for row in rows:
                checked += 1
                if row.position != expected_position:
                    missing = (
                        f"{expected_position}"
                        if row.position == expected_position + 1
                        else (f"{expected_position}-{row.position - 1}")
                    )
                    problems.append(BrokenLink(row.position, row.stream_id, f"position {missing} missing (deleted)"))
                if bytes(row.prev_hash) != previous_hash:
                    problems.append(
                        BrokenLink(
                            row.position,
                            row.stream_id,
                            "link to the previous event broken",
                            previous_hash.hex(),
                            bytes(row.prev_hash).hex(),
                        )
                    )
                _check_content(row, problems)
                expected_position, previous_hash = row.position + 1, bytes(row.hash)
            after = rows[-1].position
        head = connection.execute(text("SELECT position, hash FROM log_head")).one()
    if len(problems) < max_problems and (head.position != expected_position - 1 or bytes(head.hash) != previous_hash):
        problems.append(
            BrokenLink(
                head.position,
                "-",
                f"log head names position {head.position}, the last event is {expected_position - 1} "
                "(events at the end deleted)",
                bytes(head.hash).hex(),
                previous_hash.hex(),
            )
        )
    return VerificationReport("log", checked, tuple(problems[:max_problems]))


def verify_stream(engine: Engine, stream_id: str) -> VerificationReport:
    """Check one stream: its versions are contiguous, each hash matches, each link matches the global log."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                f"SELECT {_FIELDS}, p.hash AS previous_hash, p.position IS NOT NULL AS has_previous"
                " FROM events e LEFT JOIN events p ON p.position = e.position - 1"
                " WHERE e.stream_id = :stream_id ORDER BY e.stream_version"
            ),
            {"stream_id": stream_id},
        ).all()
    return VerificationReport(f"stream {stream_id}", len(rows), tuple(_stream_problems(rows)))


def _stream_problems(rows: Iterable[Any]) -> list[BrokenLink]:
    problems: list[BrokenLink] = []
    expected_version = 1
    for row in rows:
        if row.stream_version != expected_version:
            problems.append(
                BrokenLink(row.position, row.stream_id, f"stream version {expected_version} missing (deleted)")
            )
        expected_version = row.stream_version + 1
        if row.position == 1:
            predecessor: bytes | None = GENESIS_HASH
        else:
            predecessor = bytes(row.previous_hash) if row.has_previous else None
        if predecessor is None:
            problems.append(BrokenLink(row.position, row.stream_id, f"position {row.position - 1} missing (deleted)"))
        elif predecessor != bytes(row.prev_hash):
            problems.append(
                BrokenLink(
                    row.position,
                    row.stream_id,
                    "link to the previous event broken",
                    predecessor.hex(),
                    bytes(row.prev_hash).hex(),
                )
            )
        _check_content(row, problems)
    return problems


_PROJECTED = (
    "SELECT episode_id, client_id, status, status_since, level, level_since, flags, opened_at, closed_at, version,"
    " facility, last_position, state FROM episodes"
)


def verify_projection(store: PostgresEventStore, episode_id: str | None = None) -> VerificationReport:
    """Fold the episodes again from the log and name every `episodes` row that differs from the fold (the
    census, the alerts and the partners' checks read those rows), one that has no episode, and an episode
    that has no row. One snapshot for the log and the rows. `episode_id`: that episode alone."""
    states: dict[str, Episode] = {}
    last: dict[str, int] = {}
    with store.engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection, connection.begin():
        if episode_id is None:
            rows = connection.execute(text(_PROJECTED + " ORDER BY episode_id")).all()
            after = 0
            while page := store.read_page(connection, after_position=after, limit=5000):
                for event in page:
                    _fold_into(states, last, event)
                after = page[-1].position
        else:
            rows = connection.execute(text(_PROJECTED + " WHERE episode_id = :id"), {"id": episode_id}).all()
            stream = connection.execute(
                text(f"SELECT {_FIELDS} FROM events e WHERE e.stream_id = :id ORDER BY e.stream_version"),
                {"id": episode_id},
            ).all()
            for stored in stream:
                _fold_into(states, last, store._row_to_event(stored))
    problems: list[BrokenLink] = []
    found = {row.episode_id: row for row in rows}
    for sid in sorted(found.keys() | states.keys()):
        row = found.get(sid)
        position = last.get(sid, row.last_position if row is not None else -1)
        if row is None:
            problems.append(BrokenLink(position, sid, "the log holds this episode; its `episodes` row is missing"))
            continue
        if sid not in states:
            problems.append(BrokenLink(position, sid, "an `episodes` row for an episode the log does not hold"))
            continue
        expected = _projected_row(states[sid], last[sid])
        differing = [
            column
            for column, value in expected.items()
            if (json.loads(str(value)) if column == "state" else value) != getattr(row, column)
        ]
        if differing:
            problems.append(
                BrokenLink(
                    row.last_position,
                    sid,
                    f"`episodes` row differs from the log's fold in {', '.join(differing)} (the projection was edited)",
                )
            )
    compared = len(found.keys() | states.keys())
    return VerificationReport(f"projection {episode_id or 'episodes'}", compared, tuple(problems))


def _fold_into(states: dict[str, Episode], last: dict[str, int], event: StoredEvent) -> None:
    if event.event_type in EVENT_TYPES:
        states[event.stream_id] = evolve(states.get(event.stream_id), episode_event(event))
        last[event.stream_id] = event.position
