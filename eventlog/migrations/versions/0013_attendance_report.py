"""The attendance report's read side: an index that walks the episodes with sessions in id order (the report's
pages), with the dates that say whether an episode's care overlaps the period. (The policy texts episodes were
decided under, which the attendance reads judge weeks by, are in `policies`, migration 0011.)

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX episodes_with_sessions ON episodes (episode_id) INCLUDE (opened_at, closed_at)"
        " WHERE (state -> 'sessions') <> '[]'::jsonb"
    )


def downgrade() -> None:
    op.execute("DROP INDEX episodes_with_sessions")
