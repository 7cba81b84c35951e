"""Indexes for the episode list: its flag filter: a flag family (`result_missing`) matches its members
(`result_missing:<test id>`), and the filter must not scan every episode to find them; and its search
by episode id prefix.

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
-- Search by episode id prefix (LIKE 'EP-10%') whatever the database's collation.
CREATE INDEX episodes_id_prefix ON episodes (episode_id text_pattern_ops);
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute(
        "DROP INDEX episodes_id_prefix; DROP INDEX episodes_flag_families;"
        " DROP FUNCTION continuum_flag_families(text[]);"
    )
