"""The lending expiry deadline as a column, like borrowing's rota_entries.deadline_at.

- lending_requests.deadline_at: nullable timestamp, indexed: when a Tick would next change the
  request (its expiry), NULL when nothing is due. The timer selects due rows with an indexed
  query instead of reading the JSON of every NEW request.
- Existing rows get the deadline their JSON held (extra["deadline"], an ISO time written with
  the configured lending policy), and the key leaves the JSON. A row without it stays NULL: the
  timer never visited such a row before either.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0009'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# gateway.store.types.UTCDateTime stores through this (aware, UTC; naive UTC text on SQLite).
TIMESTAMP = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), 'postgresql')
_PAGE = 500

_lending = sa.table('lending_requests', sa.column('id', sa.Integer), sa.column('extra', JSON),
                    sa.column('deadline_at', TIMESTAMP))


def _stored(value: datetime, dialect: str) -> datetime:
    utc = value.astimezone(UTC)
    return utc.replace(tzinfo=None) if dialect == 'sqlite' else utc


def _loaded(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _pages(conn: sa.Connection, *columns: sa.ColumnElement):
    """The lending rows (id, *columns), a page at a time, so a large table is not read at once."""
    last = 0
    while True:
        page = conn.execute(sa.select(_lending.c.id, *columns).where(_lending.c.id > last)
                            .order_by(_lending.c.id).limit(_PAGE)).all()
        if not page:
            return
        yield page
        last = page[-1].id


def _move_into_column() -> None:
    conn = op.get_bind()
    update = (_lending.update().where(_lending.c.id == sa.bindparam('_id'))
              .values(extra=sa.bindparam('_extra'), deadline_at=sa.bindparam('_deadline')))
    for page in _pages(conn, _lending.c.extra):
        values = []
        for row in page:
            extra = dict(row.extra or {})
            if 'deadline' not in extra:
                continue
            text = extra.pop('deadline')
            deadline = _stored(datetime.fromisoformat(text), conn.dialect.name) if text else None
            values.append({'_id': row.id, '_extra': extra, '_deadline': deadline})
        if values:
            conn.execute(update, values)


def _move_into_json() -> None:
    conn = op.get_bind()
    update = _lending.update().where(_lending.c.id == sa.bindparam('_id')).values(extra=sa.bindparam('_extra'))
    for page in _pages(conn, _lending.c.extra, _lending.c.deadline_at):
        values = [{'_id': row.id, '_extra': {**(row.extra or {}), 'deadline': (
                   _loaded(row.deadline_at).isoformat() if row.deadline_at is not None else None)}}
                  for row in page]
        conn.execute(update, values)


def upgrade() -> None:
    with op.batch_alter_table('lending_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deadline_at', TIMESTAMP, nullable=True))
        batch_op.create_index(batch_op.f('ix_lending_requests_deadline_at'), ['deadline_at'], unique=False)
    _move_into_column()


def downgrade() -> None:
    _move_into_json()
    with op.batch_alter_table('lending_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lending_requests_deadline_at'))
        batch_op.drop_column('deadline_at')
