"""The access log says what a disclosure was in columns: recipient, format and basis beside its purpose.

An export is a disclosure (42 CFR 2.25's accounting lists it). Until now it was recorded only as the text
`export <format> to <recipient>`, which the accounting took apart with `split_part`; rows recorded before
this migration are backfilled from that text. `basis` (why the disclosure was lawful without a consent,
such as audit and evaluation) stays NULL for those rows: nothing recorded it. The log stays append-only:
its trigger is set aside for the backfill alone, inside this migration's transaction.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = r"""
ALTER TABLE record_access
    ADD COLUMN recipient text,
    ADD COLUMN format    text,
    ADD COLUMN basis     text,
    ADD CONSTRAINT record_access_disclosure_has_recipient CHECK (format IS NULL OR recipient IS NOT NULL);

ALTER TABLE record_access DISABLE TRIGGER record_access_append_only;
UPDATE record_access
   SET recipient = split_part(what, ' to ', 2), format = split_part(what, ' ', 2)
 WHERE what LIKE 'export % to %';
ALTER TABLE record_access ENABLE TRIGGER record_access_append_only;

-- The accounting of disclosures reads an episode's disclosures only.
CREATE INDEX record_access_disclosures ON record_access (episode_id, access_id) WHERE recipient IS NOT NULL;
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute(
        "DROP INDEX record_access_disclosures;"
        " ALTER TABLE record_access DROP CONSTRAINT record_access_disclosure_has_recipient,"
        " DROP COLUMN recipient, DROP COLUMN format, DROP COLUMN basis;"
    )
