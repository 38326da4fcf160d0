"""Outbox leases: count the attempts whose outcome was never recorded.

- outbox.unknown_outcomes: integer, default 0. A claimed (`sending`) row whose lease ran out
  before its outcome was recorded goes back to `pending` and this count goes up, so the next send
  is known to be a retry after an unknown outcome (the partner may already have the message).
  Existing rows get 0.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | Sequence[str] | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unknown_outcomes', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('unknown_outcomes')
