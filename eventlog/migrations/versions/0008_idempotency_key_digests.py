"""Idempotency keys kept only as their digest.

A caller's Idempotency-Key is free text and may say more than an id should (`jane-doe-heroin-relapse`).
Since this release the API keeps only its SHA-256 in hex (`api.commands.key_digest`); this migration
replaces the keys stored before with their digest, so a retry with the same key still finds its answer.
Every row at this migration predates the digests (migrations run before the application starts).

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "UPDATE api_idempotency SET idempotency_key = encode(sha256(convert_to(idempotency_key, 'UTF8')), 'hex')"
    )


def downgrade() -> None:
    pass  # a digest cannot be turned back into the key, and the digests work with either code
