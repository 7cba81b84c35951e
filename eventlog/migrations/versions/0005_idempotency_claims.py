"""Idempotency keys claimed atomically: a row is inserted as a pending claim before the command runs.

A pending row has no status or body yet and names its claim (a random id) and when it was claimed; the
request that inserted it runs the command and completes the row. A claim released after a failure (5xx)
keeps its request hash, so only the same request may run again under the key.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = r"""
ALTER TABLE api_idempotency
    ALTER COLUMN status DROP NOT NULL,
    ALTER COLUMN body DROP NOT NULL,
    ADD COLUMN claim      uuid,
    ADD COLUMN claimed_at timestamptz,
    ADD CONSTRAINT api_idempotency_complete_or_pending CHECK ((status IS NULL) = (body IS NULL)),
    ADD CONSTRAINT api_idempotency_completed_unclaimed CHECK (status IS NULL OR claim IS NULL);
"""

GRANTS = r"""
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'continuum_app') THEN
        GRANT UPDATE (status, body, claim, claimed_at) ON api_idempotency TO continuum_app;
    END IF;
END $$;
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute("DELETE FROM api_idempotency WHERE status IS NULL")
    op.execute(
        "ALTER TABLE api_idempotency DROP CONSTRAINT api_idempotency_completed_unclaimed,"
        " DROP CONSTRAINT api_idempotency_complete_or_pending, DROP COLUMN claimed_at, DROP COLUMN claim,"
        " ALTER COLUMN body SET NOT NULL, ALTER COLUMN status SET NOT NULL"
    )
