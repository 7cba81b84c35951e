"""The vocabulary in PostgreSQL: a version-1 TestCancelled read through its upcaster (exports keep it as
recorded), and migration 0006's disclosure columns, backfilled from the access log's text."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, text

from continuum.access import AccessLog, ApiKey, DisclosureBasis, Role
from continuum.api.commands import key_digest
from continuum.domain.codec import to_envelope
from continuum.domain.events import DomainEvent, EpisodeOpened, StayStarted, TestCancelled, TestOrdered
from continuum.domain.ids import ClientId, EpisodeId
from continuum.domain.levels import LevelOfCare
from continuum.domain.testing import OrderReason
from continuum.eventlog.export import fhir_bundle, ndjson_lines, verify_ndjson
from continuum.eventlog.migrate import MIGRATIONS
from continuum.eventlog.projection import EpisodesProjection, episode_as_of
from continuum.eventlog.reads import EpisodeReads
from continuum.eventlog.records import EventMetadata, NewEvent
from continuum.eventlog.store import PostgresEventStore
from continuum.eventlog.verify import verify_stream

pytestmark = pytest.mark.integration
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
EP = EpisodeId("ep-1")


def _new(event: DomainEvent) -> NewEvent:
    envelope = to_envelope(event)
    return NewEvent(uuid.uuid4(), envelope.type, envelope.schema_version, envelope.data, event.occurred_at)


def test_a_version_one_cancellation_folds_through_the_upcaster_and_exports_as_recorded(app_engine: Engine) -> None:
    store = PostgresEventStore(app_engine, projectors=[EpisodesProjection()])
    opened = [
        EpisodeOpened(EP, T0, ClientId("client-1")),
        StayStarted(EP, T0, LevelOfCare.RESIDENTIAL, 14.0, "sha256:test"),
        TestOrdered(
            EP, T0, "ep-1.T1", OrderReason.CLINICIAN, LevelOfCare.RESIDENTIAL, T0 + timedelta(days=3), "dr-lee", "v"
        ),
    ]
    store.append("ep-1", [_new(e) for e in opened], expected_version=0)
    v1 = {"episode_id": "ep-1", "occurred_at": "2026-01-05T10:00:00.000000Z", "test_id": "ep-1.T1", "reason": "twice"}
    store.append(
        "ep-1",
        [NewEvent(uuid.uuid4(), "TestCancelled", 1, v1, T0 + timedelta(hours=1), EventMetadata())],
        expected_version=3,
    )

    [read] = store.read_stream("ep-1", from_version=4)
    [recorded] = store.read_stream("ep-1", from_version=4, as_recorded=True)
    state = episode_as_of(store, "ep-1", at=datetime.now(UTC))
    projected = EpisodeReads(app_engine).get("ep-1")

    assert read.schema_version == 2 and read.payload == {**v1, "cancelled_by": None}
    assert recorded.schema_version == 1 and recorded.payload == v1
    assert (
        state is not None and state.tests[0].cancelled and projected is not None and projected["tests"][0]["cancelled"]
    )
    everything = store.read_stream("ep-1", as_recorded=True)
    assert verify_ndjson(list(ndjson_lines(everything))).ok  # the export carries what the hashes cover
    assert fhir_bundle("ep-1", everything)["entry"][0]["resource"]["status"] == "active"
    assert verify_stream(app_engine, "ep-1").ok
    assert TestCancelled.SCHEMA_VERSION == 2


def _alembic(url: str, step: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            getattr(command, step)(config, revision)
    finally:
        engine.dispose()


def test_migration_0006_backfills_the_disclosure_columns_and_exports_are_written_by_column(
    database_url: str, app_engine: Engine
) -> None:
    _alembic(database_url, "downgrade", "0005")
    superuser = create_engine(database_url)
    with superuser.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO record_access (key_id, role, episode_id, what, purpose) VALUES"
                " ('k-1', 'auditor', 'ep-1', 'export fhir to state-auditor', 'audit'),"
                " ('k-1', 'auditor', 'ep-1', 'events', 'operations')"
            )
        )
    superuser.dispose()
    _alembic(database_url, "upgrade", "head")
    auditor = ApiKey("k-2", "audit-team", Role.AUDITOR, None, T0, None)
    AccessLog(app_engine).record_export(
        auditor,
        "ep-1",
        format="ndjson",
        recipient="payer-9",
        purpose="payer_audit",
        basis=DisclosureBasis.AUDIT_AND_EVALUATION,
    )

    log = AccessLog(app_engine).for_episode("ep-1")
    accounting = EpisodeReads(app_engine).disclosures("ep-1", None, None)

    assert [(e.what, e.recipient, e.format, e.basis) for e in log] == [
        ("export fhir to state-auditor", "state-auditor", "fhir", None),
        ("events", None, None, None),
        ("export ndjson to payer-9", "payer-9", "ndjson", DisclosureBasis.AUDIT_AND_EVALUATION),
    ]
    assert [(d["recipient"], d["purpose"], d["disclosed"], d["basis"]) for d in accounting] == [
        ("state-auditor", "audit", ["the episode's full history (fhir)"], None),
        ("payer-9", "payer_audit", ["the episode's full history (ndjson)"], "audit_and_evaluation"),
    ]
    with app_engine.begin() as conn, pytest.raises(Exception, match="append-only|permission denied"):
        conn.execute(text("UPDATE record_access SET recipient = 'someone-else'"))


def test_migration_0008_keeps_only_the_digest_of_idempotency_keys_stored_before(database_url: str) -> None:
    """Keys stored in clear before the digests are replaced by their digest, so a retry still finds them."""
    _alembic(database_url, "downgrade", "0007")
    superuser = create_engine(database_url)
    with superuser.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_idempotency (key_id, idempotency_key, request_hash, status, body) VALUES"
                " ('k-1', 'jane-doe-heroin-relapse', '\\x00', 201, '{}')"
            )
        )
    _alembic(database_url, "upgrade", "head")
    with superuser.connect() as conn:
        keys = conn.execute(text("SELECT idempotency_key FROM api_idempotency")).scalars().all()
    superuser.dispose()
    assert keys == [key_digest("jane-doe-heroin-relapse")]
