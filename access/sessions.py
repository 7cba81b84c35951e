"""Dashboard sessions: a random token in the cookie, only its SHA-256 digest in the database.

A session lasts `SESSION_LIFETIME` at most; signing out ends it, and so does revoking its API key (the
revocation ends the key's sessions in the same transaction, and every lookup re-checks the key). The
session's CSRF token is derived from its token, so it is never stored and a page can always show it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, text

from continuum.access import ApiKey, _key

SESSION_LIFETIME = timedelta(hours=8)


def _digest(token: str) -> bytes:
    # 256-bit random tokens: a plain SHA-256 is enough, there is nothing to brute-force.
    return hashlib.sha256(token.encode()).digest()


def csrf_token(session_token: str) -> str:
    """The session's CSRF token: a keyed digest of its token, which a page on another site cannot compute."""
    return hmac.new(session_token.encode(), b"continuum dashboard csrf", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class DashboardSession:
    """A signed-in browser: its key (checked not revoked on every lookup) and the CSRF token its forms carry."""

    session_id: int
    key: ApiKey
    csrf: str


class SessionStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def open(self, key: ApiKey) -> str:
        """A new session for `key`; the token is returned once (for the cookie) and only its digest is kept."""
        token = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO dashboard_sessions (token_hash, key_id, expires_at)"
                    " VALUES (:h, :k, clock_timestamp() + make_interval(secs => :lifetime))"
                ),
                {"h": _digest(token), "k": key.key_id, "lifetime": SESSION_LIFETIME.total_seconds()},
            )
        return token

    def find(self, token: str) -> DashboardSession | None:
        """The live session with this token: not expired, not ended, its key not revoked."""
        if not token or len(token) > 128:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT s.session_id, k.key_id, k.name, k.role, k.subject, k.created_at, k.revoked_at, k.facilities"
                    " FROM dashboard_sessions s JOIN api_keys k USING (key_id)"
                    " WHERE s.token_hash = :h AND s.revoked_at IS NULL AND s.expires_at > clock_timestamp()"
                    " AND k.revoked_at IS NULL"
                ),
                {"h": _digest(token)},
            ).first()
        return DashboardSession(row.session_id, _key(row), csrf_token(token)) if row else None

    def close(self, token: str) -> bool:
        """End the session (sign-out): its token opens nothing any more."""
        with self.engine.begin() as conn:
            done = conn.execute(
                text(
                    "UPDATE dashboard_sessions SET revoked_at = clock_timestamp()"
                    " WHERE token_hash = :h AND revoked_at IS NULL"
                ),
                {"h": _digest(token)},
            )
        return bool(done.rowcount)
