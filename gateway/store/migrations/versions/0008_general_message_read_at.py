"""When staff read an incoming general message.

- general_messages.read_at: nullable timestamp. NULL marks an incoming message nobody has marked
  read yet (the request's unread count); an outbound message is read when it is written.
  Existing rows are taken as read (read_at = at): they predate the unread flag, so no request
  suddenly counts old messages as unread.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | Sequence[str] | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# gateway.store.types.UTCDateTime stores through this (aware, UTC).
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('general_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('read_at', TIMESTAMP, nullable=True))
    op.execute("UPDATE general_messages SET read_at = at")


def downgrade() -> None:
    with op.batch_alter_table('general_messages', schema=None) as batch_op:
        batch_op.drop_column('read_at')
