"""Who may call the API (hashed keys), the responses of idempotent commands, and who read which record."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, text


class Role(StrEnum):
    DIRECTOR = "director"  # reads everything
    CLINICIAN = "clinician"  # episode commands and reviews
    LAB = "lab"  # records results of the tests it was sent
    PARTNER = "partner"  # its own referrals
    AUDITOR = "auditor"  # events, verification, export
    ADMIN = "admin"  # keys


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    role: Role
    subject: str | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def actor(self) -> str:
        """How events record this caller: role and key name (ids, never a person's name)."""
        return f"{self.role.value}:{self.name}"


def _hash(secret: str) -> bytes:
    # Keys are 256-bit random tokens, so a plain SHA-256 is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).digest()


class ApiKeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, name: str, role: Role, subject: str | None = None) -> tuple[ApiKey, str]:
        """A new key; the secret is returned once and only its hash is kept."""
        key_id = "k_" + secrets.token_hex(6)
        secret = f"ck_{key_id}_{secrets.token_urlsafe(32)}"
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    "INSERT INTO api_keys (key_id, name, role, subject, key_hash) VALUES (:k, :n, :r, :s, :h)"
                    " RETURNING key_id, name, role, subject, created_at, revoked_at"
                ),
                {"k": key_id, "n": name, "r": role.value, "s": subject, "h": _hash(secret)},
            ).one()
        return _key(row), secret

    def authenticate(self, secret: str) -> ApiKey | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT key_id, name, role, subject, created_at, revoked_at FROM api_keys"
                    " WHERE key_hash = :h AND revoked_at IS NULL"
                ),
                {"h": _hash(secret)},
            ).first()
        return _key(row) if row else None

    def revoke(self, key_id: str) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(
                text("UPDATE api_keys SET revoked_at = now() WHERE key_id = :k AND revoked_at IS NULL"), {"k": key_id}
            )
        return bool(done.rowcount)

    def list(self) -> list[ApiKey]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT key_id, name, role, subject, created_at, revoked_at FROM api_keys ORDER BY created_at")
            ).all()
        return [_key(r) for r in rows]


def _key(row: Any) -> ApiKey:
    return ApiKey(row.key_id, row.name, Role(row.role), row.subject, row.created_at, row.revoked_at)


@dataclass(frozen=True)
class StoredResponse:
    request_hash: bytes
    status: int
    body: Any


class IdempotencyStore:
    """The first response to each (key, Idempotency-Key), returned again for a retried command."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, key_id: str, idempotency_key: str) -> StoredResponse | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT request_hash, status, body FROM api_idempotency"
                    " WHERE key_id = :k AND idempotency_key = :i"
                ),
                {"k": key_id, "i": idempotency_key},
            ).first()
        return StoredResponse(bytes(row.request_hash), row.status, row.body) if row else None

    def put(self, key_id: str, idempotency_key: str, request_hash: bytes, status: int, body: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO api_idempotency (key_id, idempotency_key, request_hash, status, body)"
                    " VALUES (:k, :i, :h, :s, CAST(:b AS jsonb)) ON CONFLICT DO NOTHING"
                ),
                {"k": key_id, "i": idempotency_key, "h": request_hash, "s": status, "b": json.dumps(body)},
            )


@dataclass(frozen=True)
class RecordAccess:
    accessed_at: datetime
    key_id: str
    role: str
    episode_id: str | None
    what: str
    purpose: str


class AccessLog:
    """Append-only: every read of an episode's events or export, so an auditor can list who looked."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, key: ApiKey, episode_id: str | None, what: str, purpose: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO record_access (key_id, role, episode_id, what, purpose)"
                    " VALUES (:k, :r, :e, :w, :p)"
                ),
                {"k": key.key_id, "r": key.role.value, "e": episode_id, "w": what, "p": purpose},
            )

    def for_episode(self, episode_id: str) -> list[RecordAccess]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT accessed_at, key_id, role, episode_id, what, purpose FROM record_access"
                    " WHERE episode_id = :e ORDER BY access_id"
                ),
                {"e": episode_id},
            ).all()
        return [RecordAccess(*row) for row in rows]
