"""Tamper evidence against an insider, on the real PostgreSQL: signed checkpoints kept outside the log, a
signed export trailer, per-stream heads and the projection re-folded. Each attack is made as the database
owner (`superuser_engine`), who can bypass the immutability trigger but does not hold the signing key."""

from __future__ import annotations

import json
import os
import stat
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, text

from continuum.domain.codec import to_envelope
from continuum.domain.events import DomainEvent, EpisodeOpened, FlagRaised, LevelChanged, StayStarted
from continuum.domain.ids import ClientId, EpisodeId
from continuum.domain.levels import Direction, LevelOfCare
from continuum.eventlog.checkpoints import (
    Checkpoint,
    check_checkpoints,
    load_public_key,
    load_signing_key,
    read_checkpoints,
    stream_checkpoints_report,
    take_checkpoint,
)
from continuum.eventlog.export import ndjson_lines, signed_trailer, verify_ndjson
from continuum.eventlog.hashing import event_hash
from continuum.eventlog.records import EventMetadata, NewEvent
from continuum.eventlog.store import PostgresEventStore
from continuum.eventlog.verify import verify_log, verify_projection, verify_stream

pytestmark = pytest.mark.integration
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def new(event: DomainEvent) -> NewEvent:
    envelope = to_envelope(event)
    return NewEvent(
        uuid.uuid4(),
        envelope.type,
        envelope.schema_version,
        envelope.data,
        event.occurred_at,
        EventMetadata(actor="service:test", correlation_id="c-1"),
    )


def journey(episode: str) -> list[NewEvent]:
    eid = EpisodeId(episode)
    return [
        new(e)
        for e in (
            EpisodeOpened(eid, T0, ClientId(f"client-{episode}")),
            StayStarted(eid, T0 + timedelta(days=1), LevelOfCare.WITHDRAWAL_MANAGEMENT, 3.0, "sha256:test"),
            LevelChanged(
                eid,
                T0 + timedelta(days=5),
                LevelOfCare.WITHDRAWAL_MANAGEMENT,
                LevelOfCare.RESIDENTIAL,
                Direction.DOWN,
                "review r-1: goals_met",
                30.0,
                "sha256:test",
            ),
        )
    ]


@pytest.fixture
def key(tmp_path: Path) -> Ed25519PrivateKey:
    return load_signing_key(None, tmp_path / "data")


@pytest.fixture
def checkpoints(tmp_path: Path) -> Path:
    return tmp_path / "data" / "checkpoints.ndjson"


def signed(path: Path, key: Ed25519PrivateKey) -> tuple[Checkpoint, ...]:
    held = read_checkpoints(path, key.public_key())
    assert held.problems == ()
    return held.checkpoints


def full_check(engine: Engine, path: Path, key: Ed25519PrivateKey) -> list[str]:
    """What `audit verify` reports for the whole log: the chain with each checkpoint as an anchor, and the
    checkpoints' instants."""
    held = read_checkpoints(path, key.public_key())
    report = verify_log(engine, anchors=[c.anchor() for c in held.checkpoints])
    return [p.describe() for p in (*held.problems, *report.problems, *check_checkpoints(engine, held.checkpoints))]


_ROWS = (
    "SELECT position, stream_id, stream_version, event_id::text AS event_id, event_type, schema_version,"
    " occurred_at, recorded_at, payload::text AS payload, metadata::text AS metadata FROM events ORDER BY position"
)


def rechain(conn: Connection) -> None:
    """What an insider does after an edit: recompute every hash and link, and move the head to match."""
    previous = bytes(32)
    for row in conn.execute(text(_ROWS)).all():
        digest = _hash(previous, row._asdict())
        conn.execute(
            text("UPDATE events SET prev_hash = :p, hash = :h WHERE position = :pos"),
            {"p": previous, "h": digest, "pos": row.position},
        )
        previous = digest
    last = conn.execute(text("SELECT coalesce(max(position), 0) FROM events")).scalar_one()
    conn.execute(text("UPDATE log_head SET position = :n, hash = :h"), {"n": last, "h": previous})


def _hash(previous: bytes, row: dict[str, Any]) -> bytes:
    return event_hash(
        previous,
        position=row["position"],
        stream_id=row["stream_id"],
        stream_version=row["stream_version"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        schema_version=row["schema_version"],
        occurred_at=row["occurred_at"],
        recorded_at=row["recorded_at"],
        payload_json=row["payload"],
        metadata_json=row["metadata"],
    )


def forge_append(conn: Connection, stream_id: str, recorded_at: datetime) -> int:
    """Append a forged event with a valid hash to a stream at the end of the log, and move the head."""
    head = conn.execute(text("SELECT position, hash FROM log_head")).one()
    version = conn.execute(
        text("SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = :s"), {"s": stream_id}
    ).scalar_one()
    row = {
        "position": head.position + 1,
        "stream_id": stream_id,
        "stream_version": version + 1,
        "event_id": str(uuid.uuid4()),
        "event_type": "FlagRaised",
        "schema_version": 1,
        "occurred_at": recorded_at,
        "recorded_at": recorded_at,
        "payload": json.dumps(
            to_envelope(FlagRaised(EpisodeId(stream_id), recorded_at, "review_overdue", "forged")).data,
            sort_keys=True,
            separators=(",", ":"),
        ),
        "metadata": '{"actor":"service:test"}',
    }
    digest = _hash(bytes(head.hash), row)
    conn.execute(
        text(
            "INSERT INTO events (position, stream_id, stream_version, event_id, event_type, schema_version, payload,"
            " metadata, occurred_at, recorded_at, prev_hash, hash) VALUES (:position, :stream_id, :stream_version,"
            " CAST(:event_id AS uuid), :event_type, :schema_version, CAST(:payload AS json), CAST(:metadata AS json),"
            " :occurred_at, :recorded_at, :prev, :hash)"
        ),
        {**row, "prev": bytes(head.hash), "hash": digest},
    )
    conn.execute(text("UPDATE log_head SET position = :p, hash = :h"), {"p": row["position"], "h": digest})
    return int(row["position"])


def test_the_default_key_is_made_once_readable_by_its_owner_alone(tmp_path: Path) -> None:
    first = load_signing_key(None, tmp_path / "data")
    again = load_signing_key(None, tmp_path / "data")
    path = tmp_path / "data" / "checkpoint-key.pem"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert first.public_key().public_bytes_raw() == again.public_key().public_bytes_raw()
    assert load_public_key(path).public_bytes_raw() == first.public_key().public_bytes_raw()


def test_a_forged_event_with_a_valid_hash_and_a_moved_head_contradicts_the_checkpoint(
    store: PostgresEventStore, superuser_engine: Engine, key: Ed25519PrivateKey, checkpoints: Path
) -> None:
    store.append("ep-1", journey("ep-1"), expected_version=0)
    first = take_checkpoint(store.engine, key, checkpoints)
    assert full_check(store.engine, checkpoints, key) == []

    # Slipped in after the checkpoint, dated before it, as a forger hiding it would.
    with superuser_engine.begin() as conn:
        forged = forge_append(conn, "ep-1", first.taken_at - timedelta(minutes=5))
    assert verify_log(store.engine).ok  # the table alone cannot tell
    problems = full_check(store.engine, checkpoints, key)
    assert len(problems) == 1 and f"position {forged}" in problems[0] and "checkpoint #1" in problems[0]

    # Inside what the checkpoint covers: the chain recomputed, the head moved; the signed hash no longer holds.
    with superuser_engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(f"DELETE FROM events WHERE position = {forged}"))
        conn.execute(text("""UPDATE events SET payload = '{"note":"rewritten"}' WHERE position = 2"""))
        rechain(conn)
    assert verify_log(store.engine).ok
    problems = full_check(store.engine, checkpoints, key)
    assert any("does not match checkpoint #1" in p and "rewritten" in p for p in problems), problems


def test_a_deleted_tail_with_the_head_moved_back_contradicts_the_checkpoint(
    store: PostgresEventStore, superuser_engine: Engine, key: Ed25519PrivateKey, checkpoints: Path
) -> None:
    store.append("ep-1", journey("ep-1"), expected_version=0)
    take_checkpoint(store.engine, key, checkpoints)
    store.append("ep-2", journey("ep-2"), expected_version=0)
    take_checkpoint(store.engine, key, checkpoints)
    assert full_check(store.engine, checkpoints, key) == []

    with superuser_engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("DELETE FROM events WHERE position > 4"))
        rechain(conn)
    assert verify_log(store.engine).ok
    problems = full_check(store.engine, checkpoints, key)
    assert len(problems) == 1 and "the event of checkpoint #2 (position 6" in problems[0] and "gone" in problems[0]


def test_a_checkpoint_the_insider_forges_removes_or_edits_is_named(
    store: PostgresEventStore, key: Ed25519PrivateKey, checkpoints: Path
) -> None:
    for n in range(3):
        store.append(f"ep-{n}", journey(f"ep-{n}"), expected_version=0)
        take_checkpoint(store.engine, key, checkpoints)
    lines = checkpoints.read_text().splitlines()
    assert [c.sequence for c in signed(checkpoints, key)] == [1, 2, 3]

    removed = read_checkpoints(_write(checkpoints, [lines[0], lines[2]]), key.public_key())
    assert len(removed.problems) == 1 and "checkpoint between them was removed" in removed.problems[0].problem

    edited = json.loads(lines[2])
    edited["checkpoint"]["position"] = 3
    altered = read_checkpoints(_write(checkpoints, [*lines[:2], json.dumps(edited)]), key.public_key())
    assert len(altered.checkpoints) == 2 and "signature does not hold" in altered.problems[0].problem

    other = Ed25519PrivateKey.generate()  # a checkpoint of the insider's own
    take_checkpoint(store.engine, other, _write(checkpoints, []))
    assert "signature does not hold" in read_checkpoints(checkpoints, key.public_key()).problems[0].problem


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_per_episode_verification_catches_a_deleted_tail_and_an_appended_forged_event(
    store: PostgresEventStore, superuser_engine: Engine, key: Ed25519PrivateKey, checkpoints: Path
) -> None:
    for n in range(3):
        store.append(f"ep-{n}", journey(f"ep-{n}"), expected_version=0)
    take_checkpoint(store.engine, key, checkpoints)
    held = signed(checkpoints, key)
    assert all(stream_checkpoints_report(store.engine, f"ep-{n}", held).ok for n in range(3))

    # ep-1's last event (position 6, in the middle of the log) deleted, the later events renumbered and
    # re-chained, the head moved back: the stream alone still looks whole.
    with superuser_engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("DELETE FROM events WHERE position = 6"))
        for position in range(7, 10):
            conn.execute(text(f"UPDATE events SET position = {position - 1} WHERE position = {position}"))
        rechain(conn)
    assert verify_stream(store.engine, "ep-1").ok and verify_stream(store.engine, "ep-2").ok
    report = stream_checkpoints_report(store.engine, "ep-1", held)
    assert not report.ok and report.first_broken is not None
    assert "checkpoint #1" in report.first_broken.problem and "version 3" in report.first_broken.problem

    with superuser_engine.begin() as conn:
        forged = forge_append(conn, "ep-0", held[0].taken_at - timedelta(seconds=1))
    assert verify_stream(store.engine, "ep-0").ok
    appended = stream_checkpoints_report(store.engine, "ep-0", held)
    assert [p.position for p in appended.problems] == [forged] and "checkpoint #1" in appended.problems[0].problem


def test_a_truncated_or_re_signed_export_fails_verification(store: PostgresEventStore, key: Ed25519PrivateKey) -> None:
    store.append("ep-1", journey("ep-1"), expected_version=0)
    events = store.read_stream("ep-1", as_recorded=True)
    lines = [*ndjson_lines(events), signed_trailer(events, key, datetime.now(UTC))]
    public = key.public_key()
    assert verify_ndjson(lines, public_key=public, require_trailer=True).ok

    assert verify_ndjson(lines[:-2], public_key=public).ok  # the chain alone passes a cut...
    cut = verify_ndjson(lines[:-2], public_key=public, require_trailer=True)
    assert not cut.ok and "no signed trailer" in cut.problems[0].problem  # ...the trailer does not
    without_last = verify_ndjson([*lines[:-2], lines[-1]], public_key=public, require_trailer=True)
    said = " ".join(p.problem for p in without_last.problems)
    assert all(f"the trailer's {name} is" in said for name in ("count", "last_position", "head_hash"))
    re_signed = [*lines[:-2], signed_trailer(events[:-1], Ed25519PrivateKey.generate(), datetime.now(UTC))]
    refused = verify_ndjson(re_signed, public_key=public, require_trailer=True)
    assert len(refused.problems) == 1 and "the trailer's signature does not hold" in refused.problems[0].problem
    added = verify_ndjson([*lines, lines[0]], public_key=public, require_trailer=True)
    assert not added.ok and "follows the trailer" in added.problems[0].problem


def test_verification_re_folds_the_projection_and_names_each_row_that_differs(
    store: PostgresEventStore, superuser_engine: Engine
) -> None:
    for n in range(3):
        store.append(f"ep-{n}", journey(f"ep-{n}"), expected_version=0)
    assert verify_projection(store).ok and verify_projection(store).events_checked == 3
    assert verify_projection(store, "ep-1").ok

    with superuser_engine.begin() as conn:
        conn.execute(text("UPDATE episodes SET level = 'outpatient' WHERE episode_id = 'ep-1'"))
        conn.execute(text("DELETE FROM episodes WHERE episode_id = 'ep-2'"))
        conn.execute(
            text(
                "INSERT INTO episodes SELECT 'ep-9', client_id, status, status_since, level, level_since, flags,"
                " opened_at, closed_at, version, last_position, state FROM episodes WHERE episode_id = 'ep-0'"
            )
        )
    assert verify_log(store.engine).ok  # the log itself is untouched
    report = verify_projection(store)
    named = {p.stream_id: p.problem for p in report.problems}
    assert set(named) == {"ep-1", "ep-2", "ep-9"}
    assert "differs from the log's fold in level" in named["ep-1"]
    assert "row is missing" in named["ep-2"] and "does not hold" in named["ep-9"]
    one = verify_projection(store, "ep-1")
    assert [p.stream_id for p in one.problems] == ["ep-1"] and verify_projection(store, "ep-0").ok


def test_checkpoints_taken_at_once_each_follow_the_one_before(
    store: PostgresEventStore, key: Ed25519PrivateKey, checkpoints: Path
) -> None:
    store.append("ep-1", journey("ep-1"), expected_version=0)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: take_checkpoint(store.engine, key, checkpoints), range(8)))
    assert [c.sequence for c in signed(checkpoints, key)] == list(range(1, 9))
    assert full_check(store.engine, checkpoints, key) == []
