"""Staff accounts for the staff pages, and the sign-in throttle.

- staff_accounts: username (unique, lower case), display name, role (viewer | staff | admin),
  Argon2id password hash, disabled flag, last sign-in.
- sign_in_throttles: per username tried (known or not), the failed sign-ins of the current
  window and the lock they caused; in the database so that every gateway process counts them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | Sequence[str] | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model's column types: a migration must not change when the models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'staff_accounts',
        sa.Column('id', ID, nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('display_name', sa.String(length=200), nullable=False),
        sa.Column('role', sa.String(length=64), nullable=False),
        sa.Column('password_hash', sa.String(length=255), nullable=False),
        sa.Column('disabled', sa.Boolean(), nullable=False),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.Column('updated_at', TIMESTAMP, nullable=False),
        sa.Column('last_sign_in_at', TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_accounts')),
        sa.UniqueConstraint('username', name=op.f('uq_staff_accounts_username')),
    )
    op.create_table(
        'sign_in_throttles',
        sa.Column('id', ID, nullable=False),
        sa.Column('username', sa.String(length=200), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('window_started_at', TIMESTAMP, nullable=False),
        sa.Column('locked_until', TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sign_in_throttles')),
        sa.UniqueConstraint('username', name=op.f('uq_sign_in_throttles_username')),
    )
    op.create_index(op.f('ix_sign_in_throttles_window_started_at'), 'sign_in_throttles', ['window_started_at'])


def downgrade() -> None:
    op.drop_index(op.f('ix_sign_in_throttles_window_started_at'), table_name='sign_in_throttles')
    op.drop_table('sign_in_throttles')
    op.drop_table('staff_accounts')
