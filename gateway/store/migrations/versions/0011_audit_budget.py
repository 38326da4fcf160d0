"""The audit budget per source address, in the database (it was in each process's memory).

- audit_budget: per source address, the start of its current window and how many audit rows
  of refused posts it has caused in it; shared by every gateway process on the database, so
  the budget holds however many processes answer. Nothing to carry over: a window lasts a minute.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | Sequence[str] | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model's column types: a migration must not change when the models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'audit_budget',
        sa.Column('id', ID, nullable=False),
        sa.Column('source', sa.String(length=200), nullable=False),
        sa.Column('window_start', TIMESTAMP, nullable=False),
        sa.Column('used', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_budget')),
        sa.UniqueConstraint('source', name=op.f('uq_audit_budget_source')),
    )
    op.create_index(op.f('ix_audit_budget_window_start'), 'audit_budget', ['window_start'])


def downgrade() -> None:
    op.drop_index(op.f('ix_audit_budget_window_start'), table_name='audit_budget')
    op.drop_table('audit_budget')
