"""The HMAC replay guard's memory, in the database (it was in the process's memory).

- seen_signatures: one row per HMAC signature a partner has used (unique), with the HTTP
  status its request was answered with and when the entry expires. A replay is refused after
  a restart too; a signature whose request failed (5xx) does not count as used. Expired rows
  are deleted by the gateway's timer; there is nothing to carry over from the old guard.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model's column types: a migration must not change when the models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'seen_signatures',
        sa.Column('id', ID, nullable=False),
        sa.Column('signature', sa.String(length=128), nullable=False),
        sa.Column('partner_agency', sa.String(length=200), nullable=False),
        sa.Column('status', sa.Integer(), nullable=False),
        sa.Column('seen_at', TIMESTAMP, nullable=False),
        sa.Column('expires_at', TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_seen_signatures')),
        sa.UniqueConstraint('signature', name=op.f('uq_seen_signatures_signature')),
    )
    op.create_index(op.f('ix_seen_signatures_expires_at'), 'seen_signatures', ['expires_at'])


def downgrade() -> None:
    op.drop_index(op.f('ix_seen_signatures_expires_at'), table_name='seen_signatures')
    op.drop_table('seen_signatures')
