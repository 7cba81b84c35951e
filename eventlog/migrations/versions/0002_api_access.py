"""API keys (hashed), idempotent command responses, the log of who read which record, and the alerts index.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE TABLE api_keys (
    key_id      text        PRIMARY KEY,
    name        text        NOT NULL,
    role        text        NOT NULL CHECK (role IN ('director', 'clinician', 'lab', 'partner', 'auditor', 'admin')),
    subject     text,                      -- the lab or partner a lab/partner key speaks for
    key_hash    bytea       NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE api_idempotency (
    key_id          text        NOT NULL,
    idempotency_key text        NOT NULL,
    request_hash    bytea       NOT NULL,
    status          integer     NOT NULL,
    body            jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, idempotency_key)
);

-- Every read of an episode's events or export: who, when, what, why. Append-only, like the event log.
CREATE TABLE record_access (
    access_id   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    accessed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    key_id      text        NOT NULL,
    role        text        NOT NULL,
    episode_id  text,
    what        text        NOT NULL,
    purpose     text        NOT NULL
);
CREATE INDEX record_access_episode ON record_access (episode_id, accessed_at);
CREATE TRIGGER record_access_append_only BEFORE UPDATE OR DELETE ON record_access
    FOR EACH ROW EXECUTE FUNCTION continuum_refuse_event_change();

-- Alerts: positives and step-ups in a period. Partial, so the other events pay no index write.
CREATE INDEX events_alerts ON events (event_type, recorded_at)
    WHERE event_type IN ('TestResultRecorded', 'TestResultCorrected', 'LevelChanged');
"""

GRANTS = r"""
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'continuum_app') THEN
        GRANT SELECT, INSERT, UPDATE ON api_keys TO continuum_app;
        GRANT SELECT, INSERT ON api_idempotency, record_access TO continuum_app;
    END IF;
END $$;
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    op.execute(GRANTS)
