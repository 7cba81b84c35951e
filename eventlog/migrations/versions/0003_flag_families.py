"""An index for the episode list's flag filter: a flag family (`result_missing`) matches its members
(`result_missing:<test id>`), and the filter must not scan every episode to find them.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = r"""
CREATE FUNCTION continuum_flag_families(flags text[]) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ARRAY(SELECT DISTINCT split_part(f, ':', 1) FROM unnest(flags) AS f);
CREATE INDEX episodes_flag_families ON episodes USING gin (continuum_flag_families(flags));
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute("DROP INDEX episodes_flag_families; DROP FUNCTION continuum_flag_families(text[]);")
