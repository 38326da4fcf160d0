"""ReShare note markers of an inbound general message, kept as structured data.

- general_messages.markers: nullable JSON (JSONB on PostgreSQL), what
  `gateway.messages.peers.note_markers` makes of the note (seq, last_seq, flags, updated_fields,
  cluster_id, text without the markers); NULL for notes without markers and outbound messages.
  Existing rows keep NULL.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 21:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the model's column type (gateway.store.types.json_type): a migration must not
# change when the models do.
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table('general_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('markers', JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('general_messages', schema=None) as batch_op:
        batch_op.drop_column('markers')
