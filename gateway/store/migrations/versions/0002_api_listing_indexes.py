"""Indexes for the staff API's listing (filters, facets, free text, sort) and rota filter.

- ix_borrowing_requests_listing: a covering index over the columns the listing filters, groups,
  searches and sorts by, so that SQLite answers `GET /api/v1/borrowing-requests` from it without
  reading the wide rows (each carries the core's state JSON, ~2 KB). On PostgreSQL it is an empty
  partial index (`WHERE false`): PostgreSQL compresses or moves such values out of line (TOAST),
  and its B-tree entries are capped at ~2.7 KB, which long titles would exceed.
- ix_rota_entries_agency_request_id: "requests with this partner anywhere in the rota".

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LISTING_COLUMNS = [
    'status', 'active_partner', 'format', 'needs_attention', 'requester', 'created_at', 'updated_at',
    'needed_by', 'title', 'author', 'isbn', 'issn', 'oclc_number', 'external_id',
]


def upgrade() -> None:
    with op.batch_alter_table('borrowing_requests', schema=None) as batch_op:
        batch_op.create_index('ix_borrowing_requests_listing', LISTING_COLUMNS, unique=False,
                              postgresql_where=sa.text('false'))
    with op.batch_alter_table('rota_entries', schema=None) as batch_op:
        batch_op.create_index('ix_rota_entries_agency_request_id', ['agency', 'request_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rota_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_rota_entries_agency_request_id')
    with op.batch_alter_table('borrowing_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_borrowing_requests_listing')
