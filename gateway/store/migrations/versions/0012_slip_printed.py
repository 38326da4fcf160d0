"""When a request's slip was last printed (the staff pages' batch printing, web/slips.py).

- borrowing_requests.slip_printed_at, lending_requests.slip_printed_at: nullable timestamps,
  set by "Mark as printed" on a batch of book straps or pull slips; NULL until then.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | Sequence[str] | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# gateway.store.types.UTCDateTime stores through this (aware, UTC; naive UTC text on SQLite).
TIMESTAMP = sa.DateTime(timezone=True)
TABLES = ('borrowing_requests', 'lending_requests')


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('slip_printed_at', TIMESTAMP, nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('slip_printed_at')
