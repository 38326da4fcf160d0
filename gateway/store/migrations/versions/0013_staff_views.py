"""The staff page's borrowing requests list: saved views, the last choice, and its new facets.

- staff_views: a staff member's named views of the list (the list's query string), unique per
  (username, name).
- staff_preferences: per staff member, the list's last query string (restored on the next visit).
- ix_borrowing_requests_listing (SQLite) and ix_borrowing_requests_facets (PostgreSQL) are built
  again with the new facets' columns (requested_media, pickup_location, level_of_service,
  maximum_fee) and due_date, so that facets, filters and the due date sort on them stay
  index-only. The facet columns follow needs_attention as keys on both, so that every row facet
  is grouped in index order without a sort (on PostgreSQL, INCLUDEd facet columns cost an
  incremental sort of every row: 3x slower on 100,000); due_date is INCLUDEd on PostgreSQL.
  ix_borrowing_requests_due_date: the list's due date sort without filters.
- ix_general_messages_unread: a partial index of incoming messages nobody marked read (the
  "unread messages" facet and filter read only these few rows).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 21:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | Sequence[str] | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model's column types: a migration must not change when the models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
UNREAD = "direction = 'in' AND read_at IS NULL"

OLD_LISTING = ['status', 'active_partner', 'format', 'needs_attention', 'requester', 'created_at', 'updated_at',
               'needed_by', 'title', 'author', 'isbn', 'issn', 'oclc_number', 'external_id']
NEW_FACETS = ['requested_media', 'pickup_location', 'level_of_service', 'maximum_fee']
NEW_LISTING = OLD_LISTING[:4] + NEW_FACETS + OLD_LISTING[4:8] + ['due_date'] + OLD_LISTING[8:]
OLD_INCLUDE = ['requester', 'created_at', 'updated_at', 'needed_by', 'id']


def _listing_indexes(listing: list[str], facets: list[str], include: list[str]) -> None:
    with op.batch_alter_table('borrowing_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_borrowing_requests_listing')
        batch_op.drop_index('ix_borrowing_requests_facets')
    with op.batch_alter_table('borrowing_requests', schema=None) as batch_op:
        batch_op.create_index('ix_borrowing_requests_listing', listing, unique=False,
                              postgresql_where=sa.text('false'))
        batch_op.create_index('ix_borrowing_requests_facets', facets, unique=False,
                              postgresql_include=include, sqlite_where=sa.text('false'))


def upgrade() -> None:
    op.create_table(
        'staff_views',
        sa.Column('id', ID, nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('query', sa.Text(), nullable=False),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_views')),
        sa.UniqueConstraint('username', 'name', name=op.f('uq_staff_views_username_name')),
    )
    op.create_table(
        'staff_preferences',
        sa.Column('id', ID, nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('list_query', sa.Text(), nullable=False),
        sa.Column('updated_at', TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_preferences')),
        sa.UniqueConstraint('username', name=op.f('uq_staff_preferences_username')),
    )
    _listing_indexes(NEW_LISTING, OLD_LISTING[:4] + NEW_FACETS, OLD_INCLUDE + ['due_date'])
    with op.batch_alter_table('borrowing_requests', schema=None) as batch_op:
        batch_op.create_index(op.f('ix_borrowing_requests_due_date'), ['due_date'], unique=False)
    op.create_index('ix_general_messages_unread', 'general_messages', ['request_id'],
                    sqlite_where=sa.text(UNREAD), postgresql_where=sa.text(UNREAD))


def downgrade() -> None:
    op.drop_index('ix_general_messages_unread', table_name='general_messages')
    with op.batch_alter_table('borrowing_requests', schema=None) as batch_op:
        batch_op.drop_index(op.f('ix_borrowing_requests_due_date'))
    _listing_indexes(OLD_LISTING, OLD_LISTING[:4], OLD_INCLUDE)
    op.drop_table('staff_preferences')
    op.drop_table('staff_views')
