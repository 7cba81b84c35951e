"""Dashboard sessions (a random token kept only as its SHA-256 digest), and reads recorded with the episodes
a list showed and how many rows it had.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE TABLE dashboard_sessions (
    session_id   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash   bytea       NOT NULL UNIQUE,   -- SHA-256 of the cookie's token; the token itself is never stored
    key_id       text        NOT NULL REFERENCES api_keys (key_id),
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX dashboard_sessions_key ON dashboard_sessions (key_id) WHERE revoked_at IS NULL;

-- A list, the census or the alerts: the episodes shown (none for the census) and how many rows.
ALTER TABLE record_access ADD COLUMN episode_ids text[], ADD COLUMN row_count integer;
CREATE INDEX record_access_listed ON record_access USING gin (episode_ids);
-- Folding a repeated view looks for the same caller's last read of it.
CREATE INDEX record_access_caller ON record_access (key_id, accessed_at);
"""

GRANTS = r"""
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'continuum_app') THEN
        GRANT SELECT, INSERT, UPDATE ON dashboard_sessions TO continuum_app;
    END IF;
END $$;
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(
        "DROP INDEX record_access_caller; DROP INDEX record_access_listed;"
        " ALTER TABLE record_access DROP COLUMN row_count, DROP COLUMN episode_ids; DROP TABLE dashboard_sessions"
    )
