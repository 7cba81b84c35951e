"""Webhook subscriptions (an admin's: a URL, event types, the role whose feed view deliveries carry, the signing
secret and how far the dispatcher has followed the log) and their deliveries (one per subscription and event:
status, attempts, the last error code; never the body).

Revision ID: 0016
Revises: 0013
"""

from alembic import op

revision = "0016"
down_revision = "0013"
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE TABLE webhook_subscriptions (
    subscription_id text        PRIMARY KEY,
    url             text        NOT NULL,
    event_types     text[]      NOT NULL,
    role            text        NOT NULL,
    subject         text,                             -- the lab or partner a lab or partner subscription is
    secret          text        NOT NULL,             -- whsec_...: signs every delivery; never answered again
    after_position  bigint      NOT NULL,             -- the dispatcher has looked at the log up to here
    created_by      text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    disabled_at     timestamptz
);

CREATE TABLE webhook_deliveries (
    delivery_id     text        PRIMARY KEY,
    subscription_id text        NOT NULL REFERENCES webhook_subscriptions (subscription_id) ON DELETE CASCADE,
    event_id        uuid        NOT NULL,
    position        bigint      NOT NULL,
    event_type      text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed', 'withheld')),
    attempts        integer     NOT NULL DEFAULT 0,
    last_status     integer,                          -- the receiver's last HTTP status (none: unreachable)
    last_error      text,                             -- a code: http_503, unreachable, timeout
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempted_at    timestamptz,
    delivered_at    timestamptz,
    replays         integer     NOT NULL DEFAULT 0,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (subscription_id, position) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_status ON webhook_deliveries (subscription_id, status, position);
"""

GRANTS = r"""
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'continuum_app') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_subscriptions, webhook_deliveries TO continuum_app;
    END IF;
END $$;
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute("DROP TABLE webhook_deliveries; DROP TABLE webhook_subscriptions")
