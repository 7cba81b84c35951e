"""Facilities: the episodes projection keeps the facility an episode is at (census, occupancy and scope read
it), and an API key may be scoped to some facilities (`facilities`, NULL: the whole operator).

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Episodes opened before facilities are at the one default facility, `main` (domain/facilities.py).
    op.execute("ALTER TABLE episodes ADD COLUMN facility text NOT NULL DEFAULT 'main'")
    op.execute("UPDATE episodes SET facility = state ->> 'facility_id' WHERE state ->> 'facility_id' IS NOT NULL")
    op.execute("CREATE INDEX episodes_facility_level_status ON episodes (facility, level, status)")
    op.execute("ALTER TABLE api_keys ADD COLUMN facilities text[]")


def downgrade() -> None:
    op.execute("ALTER TABLE api_keys DROP COLUMN facilities")
    op.execute("DROP INDEX episodes_facility_level_status")
    op.execute("ALTER TABLE episodes DROP COLUMN facility")
