"""A disclosure says on which basis it was made and who asserted it (42 CFR Part 2).

An export to a recipient outside the program needs a consent valid now (its id is kept) or a basis from a
closed list: a medical emergency (42 CFR 2.51 asks the receiving clinician and facility, the discloser, the
time and the nature of the emergency, recorded at once: the discloser is `asserted_by`, the time
`accessed_at`), audit or evaluation, a court order (named), or the program's own staff. Rows recorded
before this migration keep NULL in the new columns: nothing recorded them.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = r"""
ALTER TABLE record_access
    ADD COLUMN asserted_by         text,
    ADD COLUMN consent_id          text,
    ADD COLUMN court_order         text,
    ADD COLUMN emergency_clinician text,
    ADD COLUMN emergency_facility  text,
    ADD COLUMN emergency_nature    text,
    ADD CONSTRAINT record_access_emergency_recorded CHECK (
        basis IS DISTINCT FROM 'medical_emergency'
        OR (emergency_clinician IS NOT NULL AND emergency_facility IS NOT NULL AND emergency_nature IS NOT NULL
            AND asserted_by IS NOT NULL)
    ),
    ADD CONSTRAINT record_access_consent_named CHECK (basis IS DISTINCT FROM 'consent' OR consent_id IS NOT NULL),
    ADD CONSTRAINT record_access_court_order_named CHECK (
        basis IS DISTINCT FROM 'court_order' OR court_order IS NOT NULL
    );
"""


def upgrade() -> None:
    op.execute(SCHEMA)


def downgrade() -> None:
    op.execute(
        "ALTER TABLE record_access DROP CONSTRAINT record_access_emergency_recorded,"
        " DROP CONSTRAINT record_access_consent_named, DROP CONSTRAINT record_access_court_order_named,"
        " DROP COLUMN asserted_by, DROP COLUMN consent_id, DROP COLUMN court_order,"
        " DROP COLUMN emergency_clinician, DROP COLUMN emergency_facility, DROP COLUMN emergency_nature;"
    )
