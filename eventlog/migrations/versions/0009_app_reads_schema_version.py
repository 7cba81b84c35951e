"""The application role may read which schema it runs on.

Processes that do not own the schema (`CONTINUUM_MIGRATE=never`, logging in as `continuum_app`) check at
start that the database is at this release's revision, and refuse to start otherwise.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'continuum_app') THEN"
        " GRANT SELECT ON alembic_version TO continuum_app; END IF; END $$"
    )


def downgrade() -> None:
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'continuum_app') THEN"
        " REVOKE SELECT ON alembic_version FROM continuum_app; END IF; END $$"
    )
