"""Webhook subscriptions and their deliveries in PostgreSQL: what the admin asked for, how far the dispatcher has
followed the log for each, and every delivery's status, attempts and last error code (never its body).

Guarantees: a delivery is one row per (subscription, event), inserted in the same transaction that moves the
subscription's position past the event, so an event is neither skipped nor queued twice; a row recorded
`delivered` is never handed out for sending again (a replay is of a failed delivery only).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import Engine, text


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # to be sent (or being retried)
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # every attempt failed: replayable
    WITHHELD = "withheld"  # no longer shown to the subscription's role (a consent withdrawn): never sent


@dataclass(frozen=True)
class Subscription:
    subscription_id: str
    url: str
    event_types: tuple[str, ...]
    role: str
    subject: str | None
    after_position: int
    created_by: str
    created_at: datetime
    disabled_at: datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    def as_json(self) -> dict[str, Any]:
        """What the API and the CLI show of it (never the secret)."""
        return {
            "subscription_id": self.subscription_id,
            "url": self.url,
            "event_types": list(self.event_types),
            "role": self.role,
            "subject": self.subject,
            "after_position": self.after_position,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "disabled_at": self.disabled_at.isoformat() if self.disabled_at else None,
        }


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    subscription_id: str
    event_id: UUID
    position: int
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime
    attempted_at: datetime | None
    delivered_at: datetime | None
    replays: int

    def as_json(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "subscription_id": self.subscription_id,
            "event_id": str(self.event_id),
            "position": self.position,
            "event_type": self.event_type,
            "status": self.status.value,
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "created_at": self.created_at.isoformat(),
            "attempted_at": self.attempted_at.isoformat() if self.attempted_at else None,
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
            "replays": self.replays,
        }


@dataclass(frozen=True)
class Found:
    """An event the subscription's role is shown, of a type it subscribed to."""

    event_id: UUID
    position: int
    event_type: str


_SUBSCRIPTION = "subscription_id, url, event_types, role, subject, after_position, created_by, created_at, disabled_at"
_DELIVERY = (
    "delivery_id, subscription_id, event_id, position, event_type, status, attempts, last_status, last_error,"
    " created_at, attempted_at, delivered_at, replays"
)
LIST_LIMIT = 500


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- subscriptions (an admin's) --------------------------------------------------------------------------

    def create(
        self, url: str, event_types: Sequence[str], role: str, subject: str | None, created_by: str
    ) -> tuple[Subscription, str]:
        """A new subscription that follows the log from its head now; its secret is returned this once."""
        secret = new_secret()
        names = {
            "i": "wh_" + secrets.token_hex(6),
            "u": url,
            "t": list(event_types),
            "r": role,
            "s": subject,
            "k": secret,
            "b": created_by,
        }
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    "INSERT INTO webhook_subscriptions"
                    " (subscription_id, url, event_types, role, subject, secret, after_position, created_by)"
                    " SELECT :i, :u, CAST(:t AS text[]), :r, :s, :k, position, :b FROM log_head"
                    f" RETURNING {_SUBSCRIPTION}"
                ),
                names,
            ).one()
        return _subscription(row), secret

    def subscriptions(self) -> list[Subscription]:
        with self.engine.connect() as conn:
            rows = conn.execute(text(f"SELECT {_SUBSCRIPTION} FROM webhook_subscriptions ORDER BY created_at")).all()
        return [_subscription(r) for r in rows]

    def get(self, subscription_id: str) -> Subscription | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                text(f"SELECT {_SUBSCRIPTION} FROM webhook_subscriptions WHERE subscription_id = :i"),
                {"i": subscription_id},
            ).first()
        return _subscription(row) if row else None

    def disable(self, subscription_id: str) -> Subscription | None:
        """Stop delivering (its deliveries stay on record); None: no such subscription."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE webhook_subscriptions SET disabled_at = clock_timestamp()"
                    " WHERE subscription_id = :i AND disabled_at IS NULL"
                ),
                {"i": subscription_id},
            )
        return self.get(subscription_id)

    def delete(self, subscription_id: str) -> bool:
        """Remove the subscription, its secret and its deliveries' records."""
        with self.engine.begin() as conn:
            done = conn.execute(
                text("DELETE FROM webhook_subscriptions WHERE subscription_id = :i"), {"i": subscription_id}
            )
        return bool(done.rowcount)

    def secret(self, subscription_id: str) -> str | None:
        with self.engine.connect() as conn:
            found = conn.execute(
                text("SELECT secret FROM webhook_subscriptions WHERE subscription_id = :i"), {"i": subscription_id}
            ).scalar()
        return str(found) if found is not None else None

    # -- following the log (the dispatcher's) ----------------------------------------------------------------

    def record_found(self, subscription: Subscription, found: Sequence[Found], next_after: int) -> bool:
        """Queue a delivery of each event found and move the subscription's position to `next_after`, at once;
        False (nothing done) if its position moved meanwhile (another round got there first)."""
        with self.engine.begin() as conn:
            moved = conn.execute(
                text(
                    "UPDATE webhook_subscriptions SET after_position = :n"
                    " WHERE subscription_id = :i AND after_position = :a"
                ),
                {"i": subscription.subscription_id, "a": subscription.after_position, "n": next_after},
            )
            if not moved.rowcount:
                return False
            for event in found:
                conn.execute(
                    text(
                        "INSERT INTO webhook_deliveries (delivery_id, subscription_id, event_id, position, event_type)"
                        " VALUES (:d, :i, :e, :p, :t) ON CONFLICT (subscription_id, event_id) DO NOTHING"
                    ),
                    {
                        "d": "dl_" + secrets.token_hex(8),
                        "i": subscription.subscription_id,
                        "e": event.event_id,
                        "p": event.position,
                        "t": event.event_type,
                    },
                )
        return True

    def pending(self, limit: int) -> list[Delivery]:
        """Deliveries to send, of active subscriptions, oldest event first within each subscription."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {', '.join('d.' + c.strip() for c in _DELIVERY.split(','))}"
                    " FROM webhook_deliveries d JOIN webhook_subscriptions s USING (subscription_id)"
                    " WHERE d.status = 'pending' AND s.disabled_at IS NULL"
                    " ORDER BY d.subscription_id, d.position LIMIT :l"
                ),
                {"l": limit},
            ).all()
        return [_delivery(r) for r in rows]

    def delivery(self, delivery_id: str) -> Delivery | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                text(f"SELECT {_DELIVERY} FROM webhook_deliveries WHERE delivery_id = :d"), {"d": delivery_id}
            ).first()
        return _delivery(row) if row else None

    def record_attempt(
        self, delivery_id: str, outcome: DeliveryStatus, http_status: int | None, error: str | None
    ) -> None:
        """One attempt's outcome (a pending one: it failed and will be tried again). A delivered row stays so."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE webhook_deliveries SET status = :o, attempts = attempts + 1, last_status = :h,"
                    " last_error = :e, attempted_at = clock_timestamp(),"
                    " delivered_at = CASE WHEN :o = 'delivered' THEN clock_timestamp() END"
                    " WHERE delivery_id = :d AND status <> 'delivered'"
                ),
                {"d": delivery_id, "o": outcome.value, "h": http_status, "e": error},
            )

    def withhold(self, delivery_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text("UPDATE webhook_deliveries SET status = 'withheld' WHERE delivery_id = :d AND status = 'pending'"),
                {"d": delivery_id},
            )

    # -- what the admin sees and replays ---------------------------------------------------------------------

    def deliveries(
        self, subscription_id: str, status: DeliveryStatus | None, limit: int = LIST_LIMIT
    ) -> list[Delivery]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {_DELIVERY} FROM webhook_deliveries WHERE subscription_id = :i"
                    " AND (CAST(:s AS text) IS NULL OR status = :s) ORDER BY position LIMIT :l"
                ),
                {"i": subscription_id, "s": status.value if status else None, "l": limit},
            ).all()
        return [_delivery(r) for r in rows]

    def replay(self, subscription_id: str, delivery_id: str) -> Delivery | None:
        """A failed delivery queued to be sent again (None: no failed delivery of that id for the subscription)."""
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    "UPDATE webhook_deliveries SET status = 'pending', replays = replays + 1"
                    " WHERE delivery_id = :d AND subscription_id = :i AND status = 'failed'"
                    f" RETURNING {_DELIVERY}"
                ),
                {"d": delivery_id, "i": subscription_id},
            ).first()
        return _delivery(row) if row else None


def _subscription(row: Any) -> Subscription:
    return Subscription(
        row.subscription_id,
        row.url,
        tuple(row.event_types),
        row.role,
        row.subject,
        int(row.after_position),
        row.created_by,
        row.created_at,
        row.disabled_at,
    )


def _delivery(row: Any) -> Delivery:
    return Delivery(
        row.delivery_id,
        row.subscription_id,
        row.event_id,
        int(row.position),
        row.event_type,
        DeliveryStatus(row.status),
        row.attempts,
        row.last_status,
        row.last_error,
        row.created_at,
        row.attempted_at,
        row.delivered_at,
        row.replays,
    )
