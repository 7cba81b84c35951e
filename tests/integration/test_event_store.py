"""The event store's guarantees, against the real PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from continuum.domain.codec import to_envelope
from continuum.domain.episode import DischargeReason, EpisodeStatus, TedsDischarge
from continuum.domain.events import (
    DomainEvent,
    EpisodeClosed,
    EpisodeOpened,
    FlagCleared,
    FlagRaised,
    LevelChanged,
    StayStarted,
)
from continuum.domain.ids import ClientId, EpisodeId
from continuum.domain.levels import Direction, LevelOfCare
from continuum.eventlog.errors import ConcurrencyError, EventIdConflict
from continuum.eventlog.hashing import canonical_json, event_hash
from continuum.eventlog.projection import EpisodesProjection, episode_as_of, projection_fingerprint, rebuild_episodes
from continuum.eventlog.records import AppendResult, EventMetadata, NewEvent, StoredEvent
from continuum.eventlog.store import _APPEND_BATCH, PostgresEventStore, _execute_all
from continuum.eventlog.upcasting import Upcasters
from continuum.eventlog.verify import Anchor, _fast_pass, take_anchor, verify_log, verify_stream

pytestmark = pytest.mark.integration
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def new(event: DomainEvent, event_id: uuid.UUID | None = None) -> NewEvent:
    envelope = to_envelope(event)
    return NewEvent(
        event_id or uuid.uuid4(),
        envelope.type,
        envelope.schema_version,
        envelope.data,
        event.occurred_at,
        EventMetadata(actor="service:test", correlation_id="c-1"),
    )


def _page(store: PostgresEventStore, after: int, limit: int) -> list[StoredEvent]:
    """One page of the whole log in position order (as the projection's rebuild reads it)."""
    with store.engine.connect() as connection:
        return store.read_page(connection, after_position=after, limit=limit)


def plain(stream: str, n: int = 1, kind: str = "Noted") -> list[NewEvent]:
    return [NewEvent(uuid.uuid4(), kind, 1, {"n": i}, T0) for i in range(n)]


def journey(episode: str) -> list[DomainEvent]:
    eid = EpisodeId(episode)
    return [
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
        FlagRaised(eid, T0 + timedelta(days=6), "review_overdue", "review requested on day 5 not done"),
    ]


def test_append_assigns_gapless_positions_and_versions_and_a_valid_chain(store: PostgresEventStore) -> None:
    first = store.append("s-1", plain("s-1", 3), expected_version=0)
    second = store.append("s-2", plain("s-2", 2), expected_version=0)
    third = store.append("s-1", plain("s-1", 1), expected_version=3)

    assert first.positions == (1, 2, 3) and first.stream_version == 3
    assert second.positions == (4, 5)
    assert third.positions == (6,) and third.stream_version == 4
    events = store.read_stream("s-1")
    assert [e.stream_version for e in events] == [1, 2, 3, 4]
    assert [e.position for e in events] == [1, 2, 3, 6]
    assert events[0].metadata == EventMetadata()
    assert verify_log(store.engine).ok
    assert verify_stream(store.engine, "s-1").ok


def test_wrong_expected_version_raises_a_concurrency_error_and_records_nothing(store: PostgresEventStore) -> None:
    store.append("s-1", plain("s-1", 2), expected_version=0)

    with pytest.raises(ConcurrencyError, match="stream s-1 is at version 2, not the expected 1"):
        store.append("s-1", plain("s-1", 1), expected_version=1)

    assert store.stream_version("s-1") == 2
    assert store.head_position() == 2


def test_retrying_an_append_returns_the_stored_positions_without_duplicating(store: PostgresEventStore) -> None:
    events = [new(e) for e in journey("ep-1")]
    first = store.append("ep-1", events, expected_version=0)

    retry = store.append("ep-1", events, expected_version=0)

    assert retry.duplicate and retry.positions == first.positions and retry.stream_version == 4
    assert len(store.read_stream("ep-1")) == 4
    assert store.head_position() == 4


def test_an_event_id_stored_with_other_content_is_refused(store: PostgresEventStore) -> None:
    event = plain("s-1")[0]
    store.append("s-1", [event], expected_version=0)
    changed = NewEvent(event.event_id, event.event_type, 1, {"n": 99}, T0)

    with pytest.raises(EventIdConflict, match="already stored with different content"):
        store.append("s-1", [changed], expected_version=None)
    with pytest.raises(EventIdConflict, match="mixes event ids"):
        store.append("s-1", [event, *plain("s-1")], expected_version=None)

    assert store.head_position() == 1


def test_eight_concurrent_writers_on_overlapping_streams_lose_nothing_and_a_follower_misses_nothing(
    store: PostgresEventStore,
) -> None:
    writers, appends_each, streams = 8, 25, [f"shared-{i}" for i in range(3)]
    followed: list[int] = []
    done = threading.Event()
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(appends_each):
                stream = streams[(worker + i) % len(streams)]
                while True:  # optimistic concurrency: read the version, append, retry on conflict
                    version = store.stream_version(stream)
                    batch = [NewEvent(uuid.uuid4(), "Noted", 1, {"w": worker, "i": i, "k": k}, T0) for k in range(2)]
                    try:
                        store.append(stream, batch, expected_version=version)
                        break
                    except ConcurrencyError:
                        continue
        except BaseException as error:  # surfaced below
            errors.append(error)

    def follow() -> None:
        after = 0
        while True:
            finished = done.is_set()
            for event in _page(store, after, 500):
                followed.append(event.position)
                after = event.position
            if finished:
                return
            time.sleep(0.001)

    follower = threading.Thread(target=follow)
    follower.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    follower.join()

    assert not errors
    total = writers * appends_each * 2
    assert followed == list(range(1, total + 1))  # strictly increasing, gapless, none missed by the follower
    everything = _page(store, 0, total + 1)
    assert len(everything) == total and len({e.event_id for e in everything}) == total
    recorded = [e.recorded_at for e in everything]
    assert recorded == sorted(recorded)  # position order is commit order
    for stream in streams:
        versions = [e.stream_version for e in store.read_stream(stream)]
        assert versions == list(range(1, len(versions) + 1))
    assert verify_log(store.engine).ok


def test_verification_while_appends_commit_sees_one_consistent_log(store: PostgresEventStore) -> None:
    stop = threading.Event()

    def append() -> None:
        while not stop.is_set():
            store.append(f"busy-{uuid.uuid4().hex[:6]}", plain("busy", 3), expected_version=0)

    writers = [threading.Thread(target=append) for _ in range(8)]
    for writer in writers:
        writer.start()
    try:
        _wait_for(lambda: store.head_position() > 0, "the first append to commit")  # else ten checks of nothing
        reports = [verify_log(store.engine, page_size=7) for _ in range(10)]
    finally:
        stop.set()
        for writer in writers:
            writer.join()

    assert all(report.ok for report in reports), [r.first_broken for r in reports if not r.ok]
    assert reports[-1].events_checked > 0


def test_the_database_refuses_update_and_delete_of_events(store: PostgresEventStore, superuser_engine: Engine) -> None:
    store.append("s-1", plain("s-1", 2), expected_version=0)

    for statement in ("UPDATE events SET payload = '{}'", "DELETE FROM events", "TRUNCATE events"):
        with pytest.raises(DBAPIError, match="permission denied"), store.engine.begin() as conn:
            conn.execute(text(statement))  # the application role holds only INSERT and SELECT
        with pytest.raises(DBAPIError, match="append-only"), superuser_engine.begin() as conn:
            conn.execute(text(statement))  # even the owner is stopped by the trigger

    assert store.head_position() == 2 and verify_log(store.engine).ok


def test_verification_names_an_edited_and_a_deleted_event(store: PostgresEventStore, superuser_engine: Engine) -> None:
    for n in range(4):
        store.append(f"ep-{n}", [new(e) for e in journey(f"ep-{n}")], expected_version=0)
    edited = store.read_stream("ep-1")[1]
    deleted = store.read_stream("ep-2")[2]
    assert verify_log(store.engine).ok

    with superuser_engine.begin() as conn:
        conn.execute(text("ALTER TABLE events DISABLE TRIGGER events_append_only"))
        conn.execute(
            text("UPDATE events SET payload = CAST(:p AS json) WHERE position = :pos"),
            {
                "p": '{"episode_id":"ep-1","level":"outpatient","occurred_at":"2026-01-06T09:00:00.000000Z"}',
                "pos": edited.position,
            },
        )
        conn.execute(text("DELETE FROM events WHERE position = :pos"), {"pos": deleted.position})
        conn.execute(text("ALTER TABLE events ENABLE TRIGGER events_append_only"))

    assert _fast_pass(store.engine) is None  # the fast pass notices, and the careful pass names what
    report = verify_log(store.engine)
    assert not report.ok
    assert report.first_broken is not None and report.first_broken.position == edited.position
    assert report.first_broken.problem == "content altered"
    assert report.first_broken.found_hash == edited.hash.hex()
    assert any(f"position {deleted.position} missing" in p.problem for p in report.problems)
    assert any(p.position == deleted.position + 1 and "link" in p.problem for p in report.problems)
    stream_report = verify_stream(store.engine, "ep-2")
    assert stream_report.first_broken is not None and "stream version 3 missing" in stream_report.first_broken.problem
    assert verify_stream(store.engine, "ep-1").first_broken.position == edited.position  # type: ignore[union-attr]
    assert verify_stream(store.engine, "ep-3").ok


def test_an_anchor_kept_outside_catches_a_rewrite_of_the_whole_chain(
    store: PostgresEventStore, superuser_engine: Engine
) -> None:
    store.append("a-1", plain("a-1", 3), expected_version=0)
    anchor = take_anchor(store.engine)  # kept outside the database, e.g. `continuum audit anchor >> anchors.ndjson`
    store.append("a-2", plain("a-2", 2), expected_version=0)
    assert anchor.position == 3 and verify_log(store.engine, anchors=[anchor]).ok

    # An intruder with the owner's rights edits event 2 and recomputes every hash after it, and the head.
    with superuser_engine.begin() as conn:
        conn.execute(text("SET session_replication_role = replica"))
        conn.execute(text("""UPDATE events SET payload = '{"note":"rewritten"}' WHERE position = 2"""))
        rows = conn.execute(
            text(
                "SELECT position, stream_id, stream_version, event_id::text AS event_id, event_type, schema_version,"
                " occurred_at, recorded_at, payload::text AS payload, metadata::text AS metadata, prev_hash"
                " FROM events ORDER BY position"
            )
        ).all()
        previous = bytes(rows[0].prev_hash)
        for row in rows:
            digest = event_hash(
                previous,
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
            conn.execute(
                text("UPDATE events SET prev_hash = :p, hash = :h WHERE position = :pos"),
                {"p": previous, "h": digest, "pos": row.position},
            )
            previous = digest
        conn.execute(text("UPDATE log_head SET hash = :h"), {"h": previous})

    assert verify_log(store.engine).ok  # the table alone cannot tell: the new chain is consistent
    report = verify_log(store.engine, anchors=[anchor])
    assert not report.ok and report.first_broken is not None
    assert report.first_broken.position == 3 and "rewritten" in report.first_broken.problem
    assert report.first_broken.expected_hash == anchor.hash
    assert verify_log(store.engine, anchors=[Anchor(5, take_anchor(store.engine).hash)]).ok  # a new anchor holds
    gone = verify_log(store.engine, anchors=[Anchor(9, anchor.hash)])
    assert gone.first_broken is not None and "gone" in gone.first_broken.problem


def test_verification_detects_reordered_and_tail_deleted_events(
    store: PostgresEventStore, superuser_engine: Engine
) -> None:
    store.append("s-1", plain("s-1", 5), expected_version=0)
    with superuser_engine.begin() as conn:
        conn.execute(text("SET session_replication_role = replica"))  # bypasses triggers, as an intruder would
        conn.execute(text("UPDATE events SET position = position + 1000 WHERE position IN (2, 3)"))
        conn.execute(text("UPDATE events SET position = 3 WHERE position = 1002"))
        conn.execute(text("UPDATE events SET position = 2 WHERE position = 1003"))
    assert not verify_log(store.engine).ok

    with superuser_engine.begin() as conn:
        conn.execute(text("SET session_replication_role = replica"))
        conn.execute(text("DELETE FROM events WHERE position = 5"))
    report = verify_log(store.engine)
    assert any("events at the end deleted" in p.problem for p in report.problems)


def test_state_as_of_an_instant_or_a_version(store: PostgresEventStore) -> None:
    events = journey("ep-1")
    for version, event in enumerate(events):
        store.append("ep-1", [new(event)], expected_version=version)
        time.sleep(0.002)
    recorded = [e.recorded_at for e in store.read_stream("ep-1")]

    at_second = episode_as_of(store, "ep-1", at=recorded[1])
    just_before_third = episode_as_of(store, "ep-1", at=recorded[2] - timedelta(microseconds=1))
    at_version_three = episode_as_of(store, "ep-1", version=3)
    before_anything = episode_as_of(store, "ep-1", at=recorded[0] - timedelta(seconds=1))

    assert at_second is not None and at_second.level is LevelOfCare.WITHDRAWAL_MANAGEMENT
    assert at_second.status is EpisodeStatus.ACTIVE and at_second.version == 2
    assert just_before_third == at_second
    assert at_version_three is not None and at_version_three.level is LevelOfCare.RESIDENTIAL
    assert at_version_three.flags == ()
    assert before_anything is None


def test_an_old_schema_version_is_upcast_on_read_and_the_stored_row_is_untouched(
    app_engine: Engine,
) -> None:
    writer = PostgresEventStore(app_engine)
    writer.append(
        "s-1", [NewEvent(uuid.uuid4(), "ConsentNoted", 1, {"recipient": "partner-7"}, T0)], expected_version=0
    )
    upcasters = Upcasters()
    upcasters.register("ConsentNoted", 1, lambda p: {**p, "purpose": "referral"})
    upcasters.register("ConsentNoted", 2, lambda p: {"recipients": [p.pop("recipient")], **p})
    reader = PostgresEventStore(app_engine, upcasters=upcasters)

    [event] = reader.read_stream("s-1")

    assert event.schema_version == 3
    assert event.payload == {"recipients": ["partner-7"], "purpose": "referral"}
    assert writer.read_stream("s-1")[0].schema_version == 1
    assert verify_log(app_engine).ok


def test_the_episodes_projection_follows_appends_and_rebuilds_byte_identically(store: PostgresEventStore) -> None:
    for n in range(6):
        store.append(f"ep-{n}", [new(e) for e in journey(f"ep-{n}")[: 2 + n % 3]], expected_version=0)
    closed = EpisodeClosed(
        EpisodeId("ep-0"), T0 + timedelta(days=9), DischargeReason.COMPLETED, TedsDischarge.COMPLETED, "sha256:test"
    )
    store.append("ep-0", [new(closed)], expected_version=2)
    store.append("other", plain("other", 3), expected_version=0)  # not an episode: the projection skips it
    with store.engine.connect() as conn:
        rows = {r.episode_id: r for r in conn.execute(text("SELECT * FROM episodes"))}
        checkpoint = conn.execute(text("SELECT position FROM projection_checkpoints")).scalar_one()
    assert rows["ep-0"].status == "closed" and rows["ep-0"].closed_at is not None
    assert rows["ep-2"].level == "residential" and rows["ep-2"].flags == ["review_overdue"]
    assert rows["ep-1"].level == "residential" and rows["ep-1"].status == "active"
    assert checkpoint == store.head_position()
    live = projection_fingerprint(store.engine)

    folded = rebuild_episodes(store)

    assert folded == store.head_position()
    assert projection_fingerprint(store.engine) == live


def test_an_event_the_episode_cannot_fold_is_refused_with_nothing_recorded(store: PostgresEventStore) -> None:
    store.append("ep-1", [new(journey("ep-1")[0])], expected_version=0)

    from continuum.domain.fold import FoldError

    with pytest.raises(FoldError, match="opened only once"):
        store.append("ep-1", [new(journey("ep-1")[0])], expected_version=1)

    assert store.head_position() == 1
    assert EpisodesProjection.name == "episodes"


def test_two_writers_with_their_own_caches_keep_the_projection_exact(app_engine: Engine) -> None:
    """Two worker processes each cache folded states; neither may write a stale one over the other's."""
    first = PostgresEventStore(app_engine, projectors=[EpisodesProjection()])
    second = PostgresEventStore(app_engine, projectors=[EpisodesProjection()])
    eid = EpisodeId("ep-1")
    history = [
        *journey("ep-1"),
        FlagCleared(eid, T0 + timedelta(days=7), "review_overdue"),
        FlagRaised(eid, T0 + timedelta(days=8), "result_missing", "test t-1 not back"),
        EpisodeClosed(
            eid, T0 + timedelta(days=9), DischargeReason.TRANSFERRED, TedsDischarge.TRANSFERRED, "sha256:test"
        ),
    ]
    for version, event in enumerate(history):
        (first if version % 2 == 0 else second).append("ep-1", [new(event)], expected_version=version)
    live = projection_fingerprint(app_engine)
    with app_engine.connect() as conn:
        row = conn.execute(text("SELECT status, flags, version FROM episodes")).one()

    rebuild_episodes(first)

    assert (row.status, row.flags, row.version) == ("closed", ["result_missing"], 7)
    assert projection_fingerprint(app_engine) == live


AWKWARD = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=AWKWARD.filter(bool), kind=AWKWARD.filter(bool), payload=st.dictionaries(AWKWARD, AWKWARD, max_size=3))
def test_the_chain_computed_in_sql_matches_the_verifier_for_any_text(
    app_engine: Engine, stream: str, kind: str, payload: dict[str, str]
) -> None:
    store = PostgresEventStore(app_engine)
    store.append(
        stream, [NewEvent(uuid.uuid4(), kind, 1, payload, T0, EventMetadata(actor=kind))], expected_version=None
    )

    assert store.read_stream(stream)[-1].payload == payload
    assert verify_stream(app_engine, stream).ok
    assert verify_log(app_engine).ok
    assert _fast_pass(app_engine) == store.head_position()  # PostgreSQL's recomputation agrees, so no fallback


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    """Synchronisation, not timing: poll until the other threads have reached the point the test needs."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


@pytest.mark.parametrize("projected", [True, False], ids=["with-projection", "log-alone"])
def test_appends_queued_behind_a_commit_are_committed_together_each_with_its_own_outcome(
    app_engine: Engine, superuser_engine: Engine, projected: bool
) -> None:
    store = PostgresEventStore(app_engine, projectors=[EpisodesProjection()] if projected else [])
    episodes = [f"grp-{i}" for i in range(6)]
    for episode in episodes:
        store.append(
            episode, [new(EpisodeOpened(EpisodeId(episode), T0, ClientId(f"c-{episode}")))], expected_version=0
        )
    stored_before = plain("retried", 2)
    first_time = store.append("retried", stored_before, expected_version=0)
    outcomes: dict[str, object] = {}
    append = _kept_outcomes(store, outcomes)

    def stay(episode: str) -> list[NewEvent]:
        return [new(StayStarted(EpisodeId(episode), T0 + timedelta(hours=1), LevelOfCare.RESIDENTIAL, 3.5, "sha256:t"))]

    followers = [threading.Thread(target=append, args=(e, e, stay(e), 1)) for e in episodes]
    followers.append(threading.Thread(target=append, args=("stale", episodes[0], plain("x"), 5)))
    followers.append(threading.Thread(target=append, args=("retry", "retried", stored_before, 0)))
    followers.append(threading.Thread(target=append, args=("fresh", "fresh", plain("fresh", 3), None)))
    _race_behind_a_waiting_leader(store, superuser_engine, append, followers)

    assert isinstance(outcomes["stale"], ConcurrencyError)
    retried = outcomes["retry"]
    assert isinstance(retried, AppendResult) and retried.positions == first_time.positions and retried.duplicate
    appended = {name: outcome for name, outcome in outcomes.items() if name not in ("stale", "retry")}
    assert all(isinstance(outcome, AppendResult) for outcome in appended.values()), outcomes
    everything = _page(store, 0, 1000)
    by_id = {e.event_id: e for e in everything}
    assert [e.position for e in everything] == list(range(1, len(everything) + 1))
    assert len(everything) == len(episodes) + 2 + 1 + len(episodes) + 3  # nothing lost, nothing doubled
    grouped = [e for e in everything if e.event_type == "StayStarted" or e.stream_id == "fresh"]
    assert len({e.recorded_at for e in grouped}) == 1  # one transaction for all the followers' appends
    for name, outcome in appended.items():
        assert isinstance(outcome, AppendResult)
        stream = "lead" if name == "leader" else name
        assert [e.position for e in everything if e.stream_id == stream][-len(outcome.positions) :] == list(
            outcome.positions
        )
    assert all(
        by_id[e.event_id].stream_version == 2
        for e in everything
        if e.stream_id in episodes and e.event_type == "StayStarted"
    )
    assert verify_log(store.engine).ok
    assert all(verify_stream(store.engine, episode).ok for episode in episodes)
    if not projected:
        return
    levels = {
        row.episode_id: row.level
        for row in store.engine.connect().execute(text("SELECT episode_id, level FROM episodes"))
    }
    assert levels == {episode: LevelOfCare.RESIDENTIAL.value for episode in episodes}
    projected = projection_fingerprint(store.engine)
    rebuild_episodes(store)
    assert projection_fingerprint(store.engine) == projected


def test_many_writers_with_group_commit_keep_every_guarantee(store: PostgresEventStore) -> None:
    writers, appends_each = 16, 30
    errors: list[BaseException] = []
    results: list[AppendResult] = []

    def write(worker: int) -> None:
        try:
            stream = f"w-{worker}"
            for i in range(appends_each):
                results.append(store.append(stream, plain(stream), expected_version=i))
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    assert sorted(p for r in results for p in r.positions) == list(range(1, writers * appends_each + 1))
    for worker in range(writers):
        versions = [e.stream_version for e in store.read_stream(f"w-{worker}")]
        assert versions == list(range(1, appends_each + 1))
    assert verify_log(store.engine).ok


def test_one_batch_decides_its_appends_in_order_as_if_each_came_alone(app_engine: Engine) -> None:
    """continuum_append_batch (migration 0017) reads each stream's version once, yet a later append of the same
    call sees the earlier ones' events: a stream appended twice, an append repeating ids, a stale one."""
    store = PostgresEventStore(app_engine)
    first, then, twice, stale = plain("s"), plain("s"), plain("t", 2), plain("s")
    calls = [("s", 0, first), ("s", 1, then), ("t", 0, twice), ("t", None, twice), ("s", 0, stale)]
    params = {
        "stream_ids": [stream for stream, _, _ in calls],
        "expected_versions": [-1 if version is None else version for _, version, _ in calls],
        "counts": [len(events) for _, _, events in calls],
        "event_ids": [e.event_id for _, _, events in calls for e in events],
        "event_types": [e.event_type for _, _, events in calls for e in events],
        "schema_versions": [e.schema_version for _, _, events in calls for e in events],
        "payloads": [canonical_json(e.payload) for _, _, events in calls for e in events],
        "metadata": [canonical_json(e.metadata.as_dict()) for _, _, events in calls for e in events],
        "occurred_at": [e.occurred_at for _, _, events in calls for e in events],
    }
    with app_engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
        rows = _execute_all(connection, _APPEND_BATCH, params)

    assert [(r.outcome, r.first_position, r.stream_version) for r in rows] == [
        ("appended", 1, 1),
        ("appended", 2, 2),
        ("appended", 3, 2),
        ("exists", None, 2),
        ("conflict", None, 2),
    ]
    stored = _page(store, 0, 100)
    assert [e.event_id for e in stored] == [e.event_id for e in first + then + twice]
    assert [row.hashes[-1] for row in rows[:3]] == [stored[0].hash, stored[1].hash, stored[3].hash]
    assert verify_log(store.engine).ok


def test_writers_racing_with_the_same_append_and_on_one_stream_each_get_their_own_outcome(
    app_engine: Engine, superuser_engine: Engine
) -> None:
    store = PostgresEventStore(app_engine)
    twin = plain("t", 2)
    outcomes: dict[str, object] = {}
    append = _kept_outcomes(store, outcomes)

    followers = [
        threading.Thread(target=append, args=("twin-a", "t", twin, 0)),
        threading.Thread(target=append, args=("twin-b", "t", twin, 0)),
        threading.Thread(target=append, args=("one", "s", plain("s"), None)),
        threading.Thread(target=append, args=("two", "s", plain("s"), None)),
        threading.Thread(target=append, args=("three", "s", plain("s"), None)),
    ]
    _race_behind_a_waiting_leader(store, superuser_engine, append, followers)

    assert all(isinstance(outcome, AppendResult) for outcome in outcomes.values()), outcomes
    twins = [outcomes["twin-a"], outcomes["twin-b"]]
    assert isinstance(twins[0], AppendResult) and isinstance(twins[1], AppendResult)
    assert twins[0].positions == twins[1].positions and sorted([twins[0].duplicate, twins[1].duplicate]) == [
        False,
        True,
    ]
    assert [e.stream_version for e in store.read_stream("s")] == [1, 2, 3]
    assert [e.position for e in _page(store, 0, 100)] == list(range(1, 7))
    assert verify_log(store.engine).ok


def _lock_waiters(engine: Engine) -> int:
    """Sessions waiting for a lock, each time read afresh (a transaction reads pg_stat_activity only once)."""
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    with engine.connect() as connection:
        return int(connection.execute(text(waiting)).scalar_one())


def _kept_outcomes(
    store: PostgresEventStore, outcomes: dict[str, object]
) -> Callable[[str, str, list[NewEvent], int | None], None]:
    """An append (for a thread racing others) whose outcome, its result or its error, is kept under `name`."""

    def append(name: str, stream: str, events: list[NewEvent], expected: int | None) -> None:
        try:
            outcomes[name] = store.append(stream, events, expected_version=expected)
        except BaseException as error:  # compared by the test
            outcomes[name] = error

    return append


def _race_behind_a_waiting_leader(
    store: PostgresEventStore,
    superuser_engine: Engine,
    append: Callable[[str, str, list[NewEvent], int | None], None],
    followers: list[threading.Thread],
) -> None:
    """With the log's lock held (every commit waits for it), a leader's append ("leader" on stream "lead") waits
    for it and `followers` queue behind that; then the lock goes, and all of them finish."""
    with superuser_engine.connect() as locker:
        locker.execute(text("BEGIN"))
        locker.execute(text("SELECT 1 FROM log_head FOR UPDATE"))
        leader = threading.Thread(target=append, args=("leader", "lead", plain("lead"), 0))
        leader.start()
        _wait_for(lambda: _lock_waiters(superuser_engine) > 0, "the first append to wait for the log lock")
        for thread in followers:
            thread.start()
        _wait_for(lambda: store.appends_waiting() == len(followers), "every follower to queue")
        locker.execute(text("ROLLBACK"))
    for thread in [leader, *followers]:
        thread.join()
