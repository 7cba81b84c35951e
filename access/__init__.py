"""Who may call the API (hashed keys), the responses of idempotent commands, and who read which record."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, text

from continuum.domain.disclosure import DisclosureBasis, ExportBasis, MedicalEmergency
from continuum.domain.errors import WebhookRequestInvalid
from continuum.domain.feed import Audience, FeedViewer
from continuum.domain.webhooks import SubscriptionRequest

__all__ = ["DisclosureBasis"]  # kept importable from here: the basis an export is recorded with


class Role(StrEnum):
    DIRECTOR = "director"  # reads everything
    CLINICIAN = "clinician"  # episode commands and reviews
    LAB = "lab"  # records results of the tests it was sent
    PARTNER = "partner"  # its own referrals
    AUDITOR = "auditor"  # events, verification, export
    ADMIN = "admin"  # keys
    # Payer authorizations and concurrent reviews: the episode's levels and authorizations, never clinical content
    UTILIZATION_REVIEWER = "utilization_reviewer"


# What of the event feed each role reads (domain/feed.py), by the API and in webhook deliveries alike; an admin
# manages keys and subscriptions and reads no events.
FEED_AUDIENCES = {
    Role.DIRECTOR: Audience.WHOLE,
    Role.AUDITOR: Audience.WHOLE,
    Role.CLINICIAN: Audience.WHOLE,  # every stream of the log is an episode's
    Role.LAB: Audience.LAB,
    Role.PARTNER: Audience.PARTNER,
}


def feed_viewer(role: Role, subject: str | None) -> FeedViewer:
    """The feed's reader for a role (and, for a lab or a partner, the one it speaks for)."""
    return FeedViewer(FEED_AUDIENCES[role], subject)


def subscription_request(url: str, event_types: Sequence[str], role: Role, subject: str | None) -> SubscriptionRequest:
    """A webhook subscription carrying `role`'s feed view, checked (WebhookRequestInvalid names the field to
    mend; an admin reads no events)."""
    if role not in FEED_AUDIENCES:
        raise WebhookRequestInvalid("role", f"the {role.value} role reads no events: name a role that reads the feed")
    return SubscriptionRequest.checked(url, event_types, FEED_AUDIENCES[role], subject)


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    role: Role
    subject: str | None
    created_at: datetime
    revoked_at: datetime | None
    facilities: frozenset[str] | None = None  # the facilities it may see and act on; None: the whole operator

    @property
    def actor(self) -> str:
        """How events record this caller: role and key name (ids, never a person's name)."""
        return f"{self.role.value}:{self.name}"


KEY_COLUMNS = "key_id, name, role, subject, created_at, revoked_at, facilities"  # what an ApiKey is read from


def _hash(secret: str) -> bytes:
    # Keys are 256-bit random tokens, so a plain SHA-256 is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).digest()


# How long a process trusts a key it has authenticated without asking the database again (issue 21: one
# round trip less per request). A key revoked by another process is refused there within this time; the
# process that revokes it refuses it at once.
KEY_CACHE_SECONDS = 5.0
_KEY_CACHE_SIZE = 10_000


class ApiKeyStore:
    def __init__(
        self,
        engine: Engine,
        *,
        cache_seconds: float = KEY_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[bytes, tuple[ApiKey, float]] = {}  # by the secret's digest, never the secret
        self._lock = threading.Lock()

    def create(
        self, name: str, role: Role, subject: str | None = None, facilities: Collection[str] | None = None
    ) -> tuple[ApiKey, str]:
        """A new key (scoped to `facilities`, or None: the whole operator); the secret is returned once and only
        its hash is kept."""
        key_id = "k_" + secrets.token_hex(6)
        secret = f"ck_{key_id}_{secrets.token_urlsafe(32)}"
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    "INSERT INTO api_keys (key_id, name, role, subject, key_hash, facilities)"
                    " VALUES (:k, :n, :r, :s, :h, :f) RETURNING " + KEY_COLUMNS
                ),
                {
                    "k": key_id,
                    "n": name,
                    "r": role.value,
                    "s": subject,
                    "h": _hash(secret),
                    "f": sorted(set(facilities)) if facilities is not None else None,
                },
            ).one()
        return _key(row), secret

    def cached(self, secret: str) -> ApiKey | None:
        """The key `secret` belongs to if this process trusts it still (`authenticate` found it within
        `cache_seconds`), without asking the database: None means ask `authenticate`. Never blocks on I/O."""
        return self._trusted(_hash(secret), self._clock())

    def authenticate(self, secret: str) -> ApiKey | None:
        """The key `secret` belongs to, unless unknown or revoked; a key found is trusted for
        `cache_seconds` (KEY_CACHE_SECONDS) in this process, an unknown one is asked for every time."""
        digest = _hash(secret)
        now = self._clock()
        cached = self._trusted(digest, now)
        if cached is not None:
            return cached
        key = self._look_up(digest)
        with self._lock:
            if key is None or self._cache_seconds <= 0:
                self._cache.pop(digest, None)
            else:
                if len(self._cache) >= _KEY_CACHE_SIZE:
                    self._cache.clear()  # many keys at once: start again rather than grow
                self._cache[digest] = (key, now + self._cache_seconds)
        return key

    def _trusted(self, digest: bytes, now: float) -> ApiKey | None:
        with self._lock:
            cached = self._cache.get(digest)
        return cached[0] if cached is not None and cached[1] > now else None

    def _look_up(self, digest: bytes) -> ApiKey | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                text(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = :h AND revoked_at IS NULL"),
                {"h": digest},
            ).first()
        return _key(row) if row else None

    def revoke(self, key_id: str) -> bool:
        self._forget(key_id)  # refused in this process from now on, whatever the database answers
        with self.engine.begin() as conn:
            done = conn.execute(
                text("UPDATE api_keys SET revoked_at = now() WHERE key_id = :k AND revoked_at IS NULL"), {"k": key_id}
            )
            # The key's dashboard sessions end with it (every session lookup re-checks the key as well).
            conn.execute(
                text("UPDATE dashboard_sessions SET revoked_at = now() WHERE key_id = :k AND revoked_at IS NULL"),
                {"k": key_id},
            )
        self._forget(key_id)  # and not cached again by a look-up that read the row before the update
        return bool(done.rowcount)

    def _forget(self, key_id: str) -> None:
        with self._lock:
            self._cache = {digest: entry for digest, entry in self._cache.items() if entry[0].key_id != key_id}

    def list(self) -> list[ApiKey]:
        with self.engine.connect() as conn:
            rows = conn.execute(text(f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at")).all()
        return [_key(r) for r in rows]


def _key(row: Any) -> ApiKey:
    scope = frozenset(row.facilities) if row.facilities is not None else None
    return ApiKey(row.key_id, row.name, Role(row.role), row.subject, row.created_at, row.revoked_at, scope)


# A pending claim older than this belongs to a request that died (the API bounds a command well below it,
# see api/commands.py), so the same request may take it over.
CLAIM_EXPIRES = timedelta(minutes=2)


@dataclass(frozen=True)
class StoredResponse:
    """The first response under the key, to answer the same request again."""

    status: int
    body: Any


@dataclass(frozen=True)
class Claimed:
    """This request holds the key: run the command, then `complete` (or `release`) the claim."""

    claim: uuid.UUID


@dataclass(frozen=True)
class InProgress:
    """The same request holds the key and is running: wait for its response."""


@dataclass(frozen=True)
class UsedForAnotherRequest:
    """The key was used for a request with a different method, path or body."""


class IdempotencyStore:
    """One command per (key, Idempotency-Key), claimed atomically; its first response is returned to retries.

    `claim` inserts a pending row, or takes one over: a released claim, or one older than CLAIM_EXPIRES.
    A row's request hash never changes, so a key is bound to one request from its first claim on.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def claim(
        self, key_id: str, idempotency_key: str, request_hash: bytes
    ) -> Claimed | StoredResponse | InProgress | UsedForAnotherRequest:
        claim = uuid.uuid4()
        names = {
            "k": key_id,
            "i": idempotency_key,
            "h": request_hash,
            "c": claim,
            "expired": CLAIM_EXPIRES.total_seconds(),
        }
        with self.engine.begin() as conn:
            inserted = conn.execute(
                text(
                    "INSERT INTO api_idempotency (key_id, idempotency_key, request_hash, claim, claimed_at)"
                    " VALUES (:k, :i, :h, :c, clock_timestamp()) ON CONFLICT DO NOTHING RETURNING claim"
                ),
                names,
            ).first()
            if inserted is None:  # the key exists: free again for this very request, or answered, or running
                inserted = conn.execute(
                    text(
                        "UPDATE api_idempotency SET claim = :c, claimed_at = clock_timestamp()"
                        " WHERE key_id = :k AND idempotency_key = :i AND request_hash = :h AND status IS NULL"
                        " AND (claim IS NULL OR claimed_at < clock_timestamp() - make_interval(secs => :expired))"
                        " RETURNING claim"
                    ),
                    names,
                ).first()
            if inserted is not None:
                return Claimed(claim)
            row = conn.execute(
                text(
                    "SELECT request_hash, status, body FROM api_idempotency WHERE key_id = :k AND idempotency_key = :i"
                ),
                names,
            ).one()
        if bytes(row.request_hash) != request_hash:
            return UsedForAnotherRequest()
        return InProgress() if row.status is None else StoredResponse(row.status, row.body)

    def complete(self, key_id: str, idempotency_key: str, claim: uuid.UUID, status: int, body: Any) -> None:
        """Keep the response for retries (only while the claim is still this request's)."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE api_idempotency SET status = :s, body = CAST(:b AS jsonb), claim = NULL"
                    " WHERE key_id = :k AND idempotency_key = :i AND claim = :c"
                ),
                {"k": key_id, "i": idempotency_key, "c": claim, "s": status, "b": json.dumps(body)},
            )

    def release(self, key_id: str, idempotency_key: str, claim: uuid.UUID) -> None:
        """Free the key for a retry of the same request (the command failed without an answer to keep)."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE api_idempotency SET claim = NULL, claimed_at = NULL"
                    " WHERE key_id = :k AND idempotency_key = :i AND claim = :c AND status IS NULL"
                ),
                {"k": key_id, "i": idempotency_key, "c": claim},
            )


@dataclass(frozen=True)
class RecordAccess:
    """One read of a record; a disclosure (an export) also names its recipient, format and basis."""

    accessed_at: datetime
    key_id: str
    role: str
    episode_id: str | None
    what: str
    purpose: str
    recipient: str | None = None
    format: str | None = None
    basis: DisclosureBasis | None = None  # None: recorded before bases were
    asserted_by: str | None = None  # who asserted the basis (the caller's actor)
    consent_id: str | None = None
    court_order: str | None = None
    emergency: MedicalEmergency | None = None  # 42 CFR 2.51: who received it, where, and why
    episode_ids: list[str] | None = None  # a list or the alerts: the episodes it showed
    row_count: int | None = None  # a list, the census or the alerts: how many rows it showed


# A view repeated by the same caller within this window (a page's auto-refresh, a poller) is one read.
FOLD_WINDOW = timedelta(minutes=5)


class AccessLog:
    """Append-only: every read of identifiable data (an episode's state or events, a list, the census, the
    alerts, a dashboard page) and every export, so an auditor can list who looked at what."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, key: ApiKey, episode_id: str | None, what: str, purpose: str) -> None:
        self._insert(key, episode_id, what, purpose, None, None, None)

    def record_view(
        self,
        key: ApiKey,
        what: str,
        purpose: str,
        *,
        episode_id: str | None = None,
        episode_ids: list[str] | None = None,
        rows: int | None = None,
    ) -> bool:
        """One read of identifiable data: an episode's state (`episode_id`), or a query (`what` names its shape,
        never a searched value) with the episodes it showed and how many rows. The same view by the same key
        again within FOLD_WINDOW, showing the same episodes, is folded into the first (False: nothing written),
        so an auto-refreshing page is one read per view, not one every few seconds."""
        names = {
            "k": key.key_id,
            "r": key.role.value,
            "e": episode_id,
            "w": what,
            "p": purpose,
            "ids": episode_ids,
            "n": rows,
            "window": FOLD_WINDOW.total_seconds(),
            "lock": f"{key.key_id}|{what}|{episode_id or ''}",
        }
        with self.engine.begin() as conn:
            # Two refreshes at once are one view: the second waits for the first and then folds into it.
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:lock, 19))"), names)
            written = conn.execute(
                text(
                    "INSERT INTO record_access (key_id, role, episode_id, what, purpose, episode_ids, row_count)"
                    " SELECT :k, :r, :e, :w, :p, CAST(:ids AS text[]), :n WHERE NOT EXISTS ("
                    "  SELECT FROM record_access WHERE key_id = :k AND what = :w"
                    "  AND episode_id IS NOT DISTINCT FROM CAST(:e AS text)"
                    "  AND episode_ids IS NOT DISTINCT FROM CAST(:ids AS text[])"
                    "  AND accessed_at > clock_timestamp() - make_interval(secs => :window))"
                ),
                names,
            )
        return bool(written.rowcount)

    def record_export(
        self,
        key: ApiKey,
        episode_id: str,
        *,
        format: str,
        recipient: str,
        purpose: str,
        basis: DisclosureBasis | ExportBasis | None,
    ) -> None:
        """An export of the episode's record: a read, and a disclosure to `recipient` (in the accounting), with
        its basis and who asserted it (the caller), recorded at once (42 CFR 2.51 for a medical emergency)."""
        justified = ExportBasis(basis) if isinstance(basis, DisclosureBasis) else basis
        self._insert(key, episode_id, f"export {format} to {recipient}", purpose, recipient, format, justified)

    def _insert(
        self,
        key: ApiKey,
        episode_id: str | None,
        what: str,
        purpose: str,
        recipient: str | None,
        format: str | None,
        justified: ExportBasis | None,
    ) -> None:
        emergency = justified.emergency if justified else None
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO record_access (key_id, role, episode_id, what, purpose, recipient, format, basis,"
                    " asserted_by, consent_id, court_order, emergency_clinician, emergency_facility, emergency_nature)"
                    " VALUES (:k, :r, :e, :w, :p, :recipient, :format, :basis, :asserted_by, :consent_id,"
                    " :court_order, :clinician, :facility, :nature)"
                ),
                {
                    "k": key.key_id,
                    "r": key.role.value,
                    "e": episode_id,
                    "w": what,
                    "p": purpose,
                    "recipient": recipient,
                    "format": format,
                    "basis": justified.basis.value if justified else None,
                    "asserted_by": key.actor if justified else None,
                    "consent_id": justified.consent_id if justified else None,
                    "court_order": justified.court_order if justified else None,
                    "clinician": emergency.clinician if emergency else None,
                    "facility": emergency.facility if emergency else None,
                    "nature": emergency.nature if emergency else None,
                },
            )

    def for_episode(self, episode_id: str) -> list[RecordAccess]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT accessed_at, key_id, role, episode_id, what, purpose, recipient, format, basis,"
                    " asserted_by, consent_id, court_order, emergency_clinician, emergency_facility, emergency_nature,"
                    " episode_ids, row_count FROM record_access"
                    " WHERE episode_id = :e OR episode_ids @> ARRAY[CAST(:e AS text)] ORDER BY access_id"
                ),
                {"e": episode_id},
            ).all()
        return [
            RecordAccess(
                row.accessed_at,
                row.key_id,
                row.role,
                row.episode_id,
                row.what,
                row.purpose,
                row.recipient,
                row.format,
                DisclosureBasis(row.basis) if row.basis else None,
                row.asserted_by,
                row.consent_id,
                row.court_order,
                MedicalEmergency(row.emergency_clinician, row.emergency_facility, row.emergency_nature)
                if row.emergency_clinician is not None
                else None,
                list(row.episode_ids) if row.episode_ids is not None else None,
                row.row_count,
            )
            for row in rows
        ]
