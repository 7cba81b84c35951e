"""What the API needs, built once at the composition root and handed to `create_app`."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from continuum.access import AccessLog, ApiKeyStore, IdempotencyStore
from continuum.access.sessions import SessionStore
from continuum.episodes import EpisodeCommands
from continuum.eventlog.attendance import AttendanceReads
from continuum.eventlog.reads import EpisodeReads
from continuum.eventlog.store import PostgresEventStore


@dataclass(frozen=True)
class Services:
    episodes: EpisodeCommands
    store: PostgresEventStore
    reads: EpisodeReads
    keys: ApiKeyStore
    idempotency: IdempotencyStore
    access: AccessLog
    sessions: SessionStore
    attendance: AttendanceReads
    export_key: Ed25519PrivateKey | None = None  # signs NDJSON exports' trailers (eventlog/checkpoints.py)

    @classmethod
    def build(
        cls, episodes: EpisodeCommands, store: PostgresEventStore, export_key: Ed25519PrivateKey | None = None
    ) -> Services:
        engine = store.engine
        attendance = AttendanceReads(engine, episodes.policy_text, episodes.directory_text, episodes.day)
        return cls(
            episodes,
            store,
            EpisodeReads(engine),
            ApiKeyStore(engine),
            IdempotencyStore(engine),
            AccessLog(engine),
            SessionStore(engine),
            attendance,
            export_key,
        )
