"""The policies decisions were made under, by version, so a caller can read the rule behind a decision.

Every decision event names its policy by `policy_version` (a hash of the policy file's text); this table
keeps each version's text, registered by the API when it starts with that policy. Versions in use before
this table existed are not in it (`continuum policy register FILE` adds one from its file).

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE TABLE policies (version text PRIMARY KEY, policy_text text NOT NULL,"
        " registered_at timestamptz NOT NULL DEFAULT now())"
    )
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'continuum_app') THEN"
        " GRANT SELECT, INSERT ON policies TO continuum_app; END IF; END $$"
    )


def downgrade() -> None:
    op.execute("DROP TABLE policies")
