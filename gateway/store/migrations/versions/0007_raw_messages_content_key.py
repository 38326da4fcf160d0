"""Duplicate key of raw messages by meaning, not bytes.

- raw_messages.content_sha256: hex SHA-256 of the message's canonical form (Canonical XML 1.0
  without comments, after dropping whitespace-only text between elements). Existing rows are
  filled in from their stored body; a body that does not parse keeps its byte digest. Should two
  stored rows turn out to be the same message (received twice before this revision), the later
  one gets a digest of its own (of its byte digest and id), so both stay: history rows point at
  them.
- uq_raw_messages_idempotency: content_sha256 instead of body_sha256 (which stays, describing the
  bytes as received).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from lxml import etree

revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = ['direction', 'partner_agency', 'kind', 'requesting_agency', 'requesting_agency_request_id',
        'message_timestamp']
_PAGE = 500

# Frozen copy of gateway.messages.identity.content_sha256 (a migration must not change when the
# code does), with the same hardened parser settings as gateway.messages.inbound.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _content_sha256(body: bytes) -> str | None:
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        return None
    try:
        tree = copy.deepcopy(etree.fromstring(body, _PARSER))
    except etree.XMLSyntaxError:
        return None
    for element in tree.iter():
        if len(element) and element.text is not None and not element.text.strip():
            element.text = None
        if element.tail is not None and not element.tail.strip():
            element.tail = None
    return hashlib.sha256(etree.tostring(tree, method="c14n", with_comments=False)).hexdigest()


def _backfill() -> None:
    conn = op.get_bind()
    raw = sa.table('raw_messages', sa.column('id'), sa.column('body'), sa.column('body_sha256'),
                   sa.column('content_sha256'), *(sa.column(name) for name in _KEY))
    update = raw.update().where(raw.c.id == sa.bindparam('_id')).values(content_sha256=sa.bindparam('_content'))
    seen: set[int] = set()  # hashes of the keys so far: a rare false hit only costs a digest of its own
    last = 0
    while True:
        page = conn.execute(sa.select(raw).where(raw.c.id > last).order_by(raw.c.id).limit(_PAGE)).all()
        if not page:
            return
        values = []
        for row in page:
            content = _content_sha256(bytes(row.body)) or row.body_sha256
            key = hash((*(getattr(row, name) for name in _KEY), content))
            if key in seen:
                content = hashlib.sha256(f"{row.body_sha256}:{row.id}".encode()).hexdigest()
            seen.add(key)
            values.append({'_id': row.id, '_content': content})
        conn.execute(update, values)
        last = page[-1].id


def upgrade() -> None:
    with op.batch_alter_table('raw_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('content_sha256', sa.String(length=64), nullable=True))
    _backfill()
    with op.batch_alter_table('raw_messages', schema=None) as batch_op:
        batch_op.alter_column('content_sha256', existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_constraint('uq_raw_messages_idempotency', type_='unique')
        batch_op.create_unique_constraint('uq_raw_messages_idempotency', [*_KEY, 'content_sha256'])


def downgrade() -> None:
    with op.batch_alter_table('raw_messages', schema=None) as batch_op:
        batch_op.drop_constraint('uq_raw_messages_idempotency', type_='unique')
        batch_op.create_unique_constraint('uq_raw_messages_idempotency', [*_KEY, 'body_sha256'])
        batch_op.drop_column('content_sha256')
