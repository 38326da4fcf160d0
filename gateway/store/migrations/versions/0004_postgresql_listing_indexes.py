"""PostgreSQL indexes for the staff API's listing (SQLite has its covering index from 0002).

- ix_borrowing_requests_facets: status, active_partner, format, needs_attention, with the other
  narrow listing columns INCLUDEd (requester, created_at, updated_at, needed_by, id). Facet counts,
  filtered listings and deep pages become index-only scans of ~100 bytes a row instead of reads
  of the wide rows (each carries the core's state JSON). On SQLite an empty partial index.
- ix_borrowing_requests_search (PostgreSQL, when pg_trgm is available): a trigram GIN index over
  the text columns joined with spaces, the expression `gateway.api.queries` searches `q` words
  in. The extension is created if it is missing and the role may; if not, the migration warns
  and goes on (free text then reads every row, as before). The extension is left in place by
  the downgrade: other objects may use it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 23:55:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import DBAPIError

revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

# Frozen copy of gateway.api.queries.SEARCH_TEXT: the planner uses the index only for this
# exact expression.
SEARCH_TEXT = ("(coalesce(title, '') || ' ' || coalesce(author, '') || ' ' || coalesce(isbn, '') || ' ' || "
               "coalesce(issn, '') || ' ' || coalesce(oclc_number, '') || ' ' || coalesce(external_id, ''))")


def upgrade() -> None:
    with op.batch_alter_table('borrowing_requests', schema=None) as batch_op:
        batch_op.create_index('ix_borrowing_requests_facets',
                              ['status', 'active_partner', 'format', 'needs_attention'], unique=False,
                              postgresql_include=['requester', 'created_at', 'updated_at', 'needed_by', 'id'],
                              sqlite_where=sa.text('false'))
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        _create_search_index(bind)


def _trigram_schema(bind: sa.Connection) -> str | None:
    return bind.exec_driver_sql(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_trgm'").scalar()


def _create_search_index(bind: sa.Connection) -> None:
    try:
        with bind.begin_nested():  # a refusal must not abort the migration's transaction
            schema = _trigram_schema(bind)
            if schema is None:
                bind.exec_driver_sql('CREATE EXTENSION IF NOT EXISTS pg_trgm')
                schema = _trigram_schema(bind)
            opclass = f'{bind.dialect.identifier_preparer.quote_identifier(schema)}.gin_trgm_ops'
            bind.exec_driver_sql(f'CREATE INDEX ix_borrowing_requests_search ON borrowing_requests '
                                 f'USING gin ({SEARCH_TEXT} {opclass})')
    except DBAPIError as exc:
        log.warning("pg_trgm is not available (%s): free-text search in the staff API will read "
                    "every request; README (Staff API, pg_trgm) shows how to add the index later",
                    str(exc.orig).strip().splitlines()[0])


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP INDEX IF EXISTS ix_borrowing_requests_search')
    with op.batch_alter_table('borrowing_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_borrowing_requests_facets')
