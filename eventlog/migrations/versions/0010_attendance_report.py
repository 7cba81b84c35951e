"""The attendance report's read side: the policy texts episodes were started with, and an index for the report.

`policy_texts` keeps each policy's text under its version (the hash every decision event records), so a read
can judge an episode's weeks by the policy it was decided under, not by the one the API runs with now. The
partial index walks the episodes with sessions in id order (the report's pages), with the dates that say
whether an episode's care overlaps the period.

(Numbered after 0009 alongside other branches' migrations: the lead renumbers on merge.)

Revision ID: 0010_attendance_report
Revises: 0009
"""

from alembic import op

revision = "0010_attendance_report"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE policy_texts (
            version text PRIMARY KEY,
            text text NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX episodes_with_sessions ON episodes (episode_id) INCLUDE (opened_at, closed_at)
            WHERE (state -> 'sessions') <> '[]'::jsonb;
        """
    )
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'continuum_app') THEN"
        " GRANT SELECT, INSERT ON policy_texts TO continuum_app; END IF; END $$"
    )


def downgrade() -> None:
    op.execute("DROP INDEX episodes_with_sessions; DROP TABLE policy_texts")
