"""Initial schema: borrowing and lending requests, their tabs, raw messages, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-28 18:10:33.910661
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model's column types: a migration must not change when the models do.
# ID: 64-bit on PostgreSQL; INTEGER PRIMARY KEY (the rowid) on SQLite.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# gateway.store.types.UTCDateTime stores through this (aware, UTC).
TIMESTAMP = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        'borrowing_requests',
        sa.Column('id', ID, nullable=False),
        sa.Column('external_id', sa.String(length=200), nullable=True),
        sa.Column('status', sa.String(length=64), nullable=False),
        sa.Column('previous_status', sa.String(length=64), nullable=True),
        sa.Column('needs_attention', sa.Boolean(), nullable=False),
        sa.Column('attention_reason', sa.Text(), nullable=True),
        sa.Column('active_partner', sa.String(length=200), nullable=True),
        sa.Column('title', sa.Text(), nullable=True),
        sa.Column('author', sa.Text(), nullable=True),
        sa.Column('title_of_component', sa.Text(), nullable=True),
        sa.Column('author_of_component', sa.Text(), nullable=True),
        sa.Column('isbn', sa.String(length=64), nullable=True),
        sa.Column('issn', sa.String(length=64), nullable=True),
        sa.Column('oclc_number', sa.String(length=64), nullable=True),
        sa.Column('other_identifiers', JSON, nullable=True),
        sa.Column('publisher', sa.Text(), nullable=True),
        sa.Column('publication_date', sa.String(length=64), nullable=True),
        sa.Column('edition', sa.String(length=200), nullable=True),
        sa.Column('volume', sa.String(length=200), nullable=True),
        sa.Column('issue', sa.String(length=200), nullable=True),
        sa.Column('pages', sa.String(length=200), nullable=True),
        sa.Column('requester', sa.String(length=200), nullable=False),
        sa.Column('requester_name', sa.String(length=400), nullable=True),
        sa.Column('owner', sa.String(length=200), nullable=True),
        sa.Column('service_type', sa.String(length=16), nullable=False),
        sa.Column('format', sa.String(length=64), nullable=False),
        sa.Column('requested_media', sa.String(length=64), nullable=True),
        sa.Column('allow_other_format', sa.Boolean(), nullable=False),
        sa.Column('preferred_send_method', sa.String(length=64), nullable=True),
        sa.Column('language', sa.String(length=64), nullable=True),
        sa.Column('needed_by', sa.Date(), nullable=True),
        sa.Column('delivery_location', sa.String(length=64), nullable=False),
        sa.Column('pickup_location', sa.String(length=200), nullable=True),
        sa.Column('reading_room_only', sa.Boolean(), nullable=False),
        sa.Column('willing_to_pay', sa.Boolean(), nullable=False),
        sa.Column('needs_patron_information', sa.Boolean(), nullable=False),
        sa.Column('agree_to_copyright_terms', sa.Boolean(), nullable=False),
        sa.Column('maximum_fee', sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column('currency', sa.String(length=3), nullable=True),
        sa.Column('level_of_service', sa.String(length=64), nullable=True),
        sa.Column('request_note', sa.Text(), nullable=True),
        sa.Column('due_date', TIMESTAMP, nullable=True),
        sa.Column('extra', JSON, nullable=False),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.Column('updated_at', TIMESTAMP, nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_borrowing_requests')),
        sa.UniqueConstraint('external_id', name=op.f('uq_borrowing_requests_external_id'))
    )
    op.create_index(op.f('ix_borrowing_requests_active_partner'), 'borrowing_requests', ['active_partner'])
    op.create_index(op.f('ix_borrowing_requests_created_at'), 'borrowing_requests', ['created_at'])
    op.create_index(op.f('ix_borrowing_requests_needed_by'), 'borrowing_requests', ['needed_by'])
    op.create_index(op.f('ix_borrowing_requests_requester'), 'borrowing_requests', ['requester'])
    op.create_index(op.f('ix_borrowing_requests_status'), 'borrowing_requests', ['status'])
    op.create_index(op.f('ix_borrowing_requests_updated_at'), 'borrowing_requests', ['updated_at'])

    op.create_table(
        'raw_messages',
        sa.Column('id', ID, nullable=False),
        sa.Column('direction', sa.String(length=3), nullable=False),
        sa.Column('partner_agency', sa.String(length=200), nullable=True),
        sa.Column('kind', sa.String(length=40), nullable=True),
        sa.Column('requesting_agency', sa.String(length=200), nullable=True),
        sa.Column('requesting_agency_request_id', sa.String(length=200), nullable=True),
        sa.Column('message_timestamp', sa.String(length=64), nullable=True),
        sa.Column('body', sa.LargeBinary(), nullable=False),
        sa.Column('body_sha256', sa.String(length=64), nullable=False),
        sa.Column('received_at', TIMESTAMP, nullable=False),
        sa.Column('confirmation', sa.LargeBinary(), nullable=True),
        sa.CheckConstraint("direction IN ('in', 'out')", name=op.f('ck_raw_messages_direction')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_raw_messages')),
        sa.UniqueConstraint('direction', 'partner_agency', 'kind', 'requesting_agency', 'requesting_agency_request_id', 'message_timestamp', 'body_sha256', name='uq_raw_messages_idempotency')
    )
    op.create_index(op.f('ix_raw_messages_received_at'), 'raw_messages', ['received_at'])

    op.create_table(
        'lending_requests',
        sa.Column('id', ID, nullable=False),
        sa.Column('requesting_agency', sa.String(length=200), nullable=False),
        sa.Column('requesting_agency_request_id', sa.String(length=200), nullable=False),
        sa.Column('supplying_agency', sa.String(length=200), nullable=False),
        sa.Column('status', sa.String(length=64), nullable=False),
        sa.Column('previous_status', sa.String(length=64), nullable=True),
        sa.Column('needs_attention', sa.Boolean(), nullable=False),
        sa.Column('title', sa.Text(), nullable=True),
        sa.Column('author', sa.Text(), nullable=True),
        sa.Column('service_type', sa.String(length=16), nullable=True),
        sa.Column('due_date', TIMESTAMP, nullable=True),
        sa.Column('raw_request_id', ID, nullable=True),
        sa.Column('extra', JSON, nullable=False),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.Column('updated_at', TIMESTAMP, nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['raw_request_id'], ['raw_messages.id'], name=op.f('fk_lending_requests_raw_request_id_raw_messages'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_lending_requests')),
        sa.UniqueConstraint('requesting_agency', 'requesting_agency_request_id', name='uq_lending_requests_request_key')
    )
    op.create_index(op.f('ix_lending_requests_created_at'), 'lending_requests', ['created_at'])
    op.create_index(op.f('ix_lending_requests_status'), 'lending_requests', ['status'])
    op.create_index(op.f('ix_lending_requests_updated_at'), 'lending_requests', ['updated_at'])

    op.create_table(
        'parameters',
        sa.Column('id', ID, nullable=False),
        sa.Column('request_id', ID, nullable=False),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('value', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['request_id'], ['borrowing_requests.id'], name=op.f('fk_parameters_request_id_borrowing_requests'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_parameters')),
        sa.UniqueConstraint('request_id', 'key', name=op.f('uq_parameters_request_id_key'))
    )
    op.create_table(
        'received_items',
        sa.Column('id', ID, nullable=False),
        sa.Column('request_id', ID, nullable=False),
        sa.Column('barcode', sa.String(length=200), nullable=True),
        sa.Column('description', sa.Text(), nullable=True),
        sa.Column('received_at', TIMESTAMP, nullable=False),
        sa.Column('due_date', TIMESTAMP, nullable=True),
        sa.Column('actor', sa.String(length=200), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['request_id'], ['borrowing_requests.id'], name=op.f('fk_received_items_request_id_borrowing_requests'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_received_items'))
    )
    op.create_index(op.f('ix_received_items_request_id'), 'received_items', ['request_id'])

    op.create_table(
        'rota_entries',
        sa.Column('id', ID, nullable=False),
        sa.Column('request_id', ID, nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('agency', sa.String(length=200), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('last_status', sa.String(length=64), nullable=True),
        sa.Column('last_reason', sa.String(length=64), nullable=True),
        sa.Column('last_answer', sa.Text(), nullable=True),
        sa.Column('supplying_agency_request_id', sa.String(length=200), nullable=True),
        sa.Column('sent_at', TIMESTAMP, nullable=True),
        sa.Column('deadline_at', TIMESTAMP, nullable=True),
        sa.Column('status_request_sent_at', TIMESTAMP, nullable=True),
        sa.Column('extra', JSON, nullable=False),
        sa.ForeignKeyConstraint(['request_id'], ['borrowing_requests.id'], name=op.f('fk_rota_entries_request_id_borrowing_requests'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_rota_entries')),
        sa.UniqueConstraint('request_id', 'agency', name=op.f('uq_rota_entries_request_id_agency'))
    )
    op.create_index(op.f('ix_rota_entries_agency'), 'rota_entries', ['agency'])
    op.create_index(op.f('ix_rota_entries_request_id_position'), 'rota_entries', ['request_id', 'position'])
    op.create_index(op.f('ix_rota_entries_state_deadline_at'), 'rota_entries', ['state', 'deadline_at'])

    op.create_table(
        'attachments',
        sa.Column('id', ID, nullable=False),
        sa.Column('request_id', ID, nullable=True),
        sa.Column('lending_id', ID, nullable=True),
        sa.Column('filename', sa.String(length=400), nullable=False),
        sa.Column('media_type', sa.String(length=200), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('content', sa.LargeBinary(), nullable=True),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(['lending_id'], ['lending_requests.id'], name=op.f('fk_attachments_lending_id_lending_requests'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['request_id'], ['borrowing_requests.id'], name=op.f('fk_attachments_request_id_borrowing_requests'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_attachments'))
    )
    op.create_index(op.f('ix_attachments_lending_id'), 'attachments', ['lending_id'])
    op.create_index(op.f('ix_attachments_request_id'), 'attachments', ['request_id'])

    op.create_table(
        'general_messages',
        sa.Column('id', ID, nullable=False),
        sa.Column('request_id', ID, nullable=True),
        sa.Column('lending_id', ID, nullable=True),
        sa.Column('direction', sa.String(length=3), nullable=False),
        sa.Column('partner_agency', sa.String(length=200), nullable=True),
        sa.Column('at', TIMESTAMP, nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=True),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('raw_message_id', ID, nullable=True),
        sa.CheckConstraint("direction IN ('in', 'out')", name=op.f('ck_general_messages_direction')),
        sa.ForeignKeyConstraint(['lending_id'], ['lending_requests.id'], name=op.f('fk_general_messages_lending_id_lending_requests'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['raw_message_id'], ['raw_messages.id'], name=op.f('fk_general_messages_raw_message_id_raw_messages'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['request_id'], ['borrowing_requests.id'], name=op.f('fk_general_messages_request_id_borrowing_requests'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_general_messages'))
    )
    op.create_index(op.f('ix_general_messages_lending_id'), 'general_messages', ['lending_id'])
    op.create_index(op.f('ix_general_messages_request_id'), 'general_messages', ['request_id'])

    op.create_table(
        'history',
        sa.Column('id', ID, nullable=False),
        sa.Column('request_id', ID, nullable=True),
        sa.Column('lending_id', ID, nullable=True),
        sa.Column('at', TIMESTAMP, nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('event', sa.String(length=64), nullable=False),
        sa.Column('from_status', sa.String(length=64), nullable=True),
        sa.Column('to_status', sa.String(length=64), nullable=True),
        sa.Column('detail', JSON, nullable=True),
        sa.Column('raw_message_id', ID, nullable=True),
        sa.ForeignKeyConstraint(['lending_id'], ['lending_requests.id'], name=op.f('fk_history_lending_id_lending_requests'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['raw_message_id'], ['raw_messages.id'], name=op.f('fk_history_raw_message_id_raw_messages'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['request_id'], ['borrowing_requests.id'], name=op.f('fk_history_request_id_borrowing_requests'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_history'))
    )
    op.create_index(op.f('ix_history_lending_id_at'), 'history', ['lending_id', 'at'])
    op.create_index(op.f('ix_history_request_id_at'), 'history', ['request_id', 'at'])

    op.create_table(
        'notes',
        sa.Column('id', ID, nullable=False),
        sa.Column('request_id', ID, nullable=True),
        sa.Column('lending_id', ID, nullable=True),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=True),
        sa.Column('text', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['lending_id'], ['lending_requests.id'], name=op.f('fk_notes_lending_id_lending_requests'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['request_id'], ['borrowing_requests.id'], name=op.f('fk_notes_request_id_borrowing_requests'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notes'))
    )
    op.create_index(op.f('ix_notes_lending_id'), 'notes', ['lending_id'])
    op.create_index(op.f('ix_notes_request_id'), 'notes', ['request_id'])

    op.create_table(
        'outbox',
        sa.Column('id', ID, nullable=False),
        sa.Column('request_id', ID, nullable=True),
        sa.Column('lending_id', ID, nullable=True),
        sa.Column('partner_agency', sa.String(length=200), nullable=False),
        sa.Column('partner_url', sa.String(length=2000), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('body', sa.LargeBinary(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', TIMESTAMP, nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.Column('delivered_at', TIMESTAMP, nullable=True),
        sa.Column('raw_message_id', ID, nullable=True),
        sa.CheckConstraint("state IN ('pending', 'sending', 'delivered', 'failed')", name=op.f('ck_outbox_state')),
        sa.CheckConstraint('request_id IS NOT NULL OR lending_id IS NOT NULL', name=op.f('ck_outbox_owner')),
        sa.ForeignKeyConstraint(['lending_id'], ['lending_requests.id'], name=op.f('fk_outbox_lending_id_lending_requests'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['raw_message_id'], ['raw_messages.id'], name=op.f('fk_outbox_raw_message_id_raw_messages'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['request_id'], ['borrowing_requests.id'], name=op.f('fk_outbox_request_id_borrowing_requests'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
        sa.UniqueConstraint('lending_id', 'partner_agency', 'seq', name=op.f('uq_outbox_lending_id_partner_agency_seq')),
        sa.UniqueConstraint('request_id', 'partner_agency', 'seq', name=op.f('uq_outbox_request_id_partner_agency_seq'))
    )
    op.create_index(op.f('ix_outbox_state_next_attempt_at'), 'outbox', ['state', 'next_attempt_at'])


def downgrade() -> None:
    op.drop_table('outbox')
    op.drop_table('notes')
    op.drop_table('history')
    op.drop_table('general_messages')
    op.drop_table('attachments')
    op.drop_table('rota_entries')
    op.drop_table('received_items')
    op.drop_table('parameters')
    op.drop_table('lending_requests')
    op.drop_table('raw_messages')
    op.drop_table('borrowing_requests')
