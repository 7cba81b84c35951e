"""The utilization reviewer's keys (the role that records payer authorizations), and an index over the episodes with
authorizations (the utilization review report's read).

Revision ID: 0015
Revises: 0016 (numbers are given out per branch: 0016, the webhooks, landed first; 0014 is another branch's)
"""

from alembic import op

revision = "0015"
down_revision = "0016"
branch_labels = None
depends_on = None

ROLES = "'director', 'clinician', 'lab', 'partner', 'auditor', 'admin'"


def upgrade() -> None:
    op.execute(
        "ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check, ADD CONSTRAINT api_keys_role_check"
        f" CHECK (role IN ({ROLES}, 'utilization_reviewer'))"
    )
    op.execute(
        "CREATE INDEX episodes_with_authorizations ON episodes (episode_id)"
        " WHERE (state -> 'authorizations') <> '[]'::jsonb"
    )


def downgrade() -> None:
    op.execute("DROP INDEX episodes_with_authorizations")
    op.execute(
        "ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check, ADD CONSTRAINT api_keys_role_check"
        f" CHECK (role IN ({ROLES}))"
    )
