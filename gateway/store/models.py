"""The database schema, as SQLAlchemy 2.0 typed declarative models.

Rules of this file:
- The models read like the schema: one class per table, columns in the order a person reads them.
- Every datetime is timezone-aware and stored as UTC (`UTCDateTime`); a naive datetime is refused.
  Calendar dates (`needed_by`) are plain `Date`s.
- Status values are stable codes (plain strings, docs/architecture.md, request statuses): the core owns the state tables,
  so adding a status never needs a migration.
- `version` columns carry optimistic concurrency. The ORM uses them (`version_id_col`), and the Core
  helpers in `queries.py` check and bump them (`UPDATE ... WHERE id = :id AND version = :v`).
- The hot path uses the `Table` objects (`BorrowingRequest.__table__`, or the `*_t` aliases at the
  bottom) with Core statements; the ORM classes are for staff pages.
- Any change here needs an Alembic revision (`gateway/store/migrations/versions/`); a test checks
  that the migrated schema matches these models.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.ext.mutable import MutableDict
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column, relationship

from .types import JSONType, UTCDateTime, json_type, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit ids on PostgreSQL; SQLite only auto-increments a column declared INTEGER PRIMARY KEY
# (its integers are 64-bit anyway).
Id = BigInteger().with_variant(Integer(), "sqlite")

# Agency ids are written "TYPE:VALUE" (e.g. "ISIL:XX-YYY"), as in the config file.
AGENCY = String(200)
CODE = String(64)

# Mutable at the top level for the ORM (`req.extra["k"] = v` is noticed); Core ignores it.
# Its own type instance: as_mutable() applies to every column sharing the instance.
MutableJSON = MutableDict.as_mutable(json_type())


class Base(AsyncAttrs, DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        date: Date(),
        dict[str, Any]: JSONType,
        Decimal: Numeric(12, 2),
        str: String(),
    }


def _fk(target: str, *, nullable: bool, ondelete: str = "CASCADE") -> Any:
    return mapped_column(Id, ForeignKey(target, ondelete=ondelete), nullable=nullable)


# The listing's facet columns, in the order the listing indexes hold them (gateway/api/queries.py).
LISTING_FACET_COLUMNS = ("status", "active_partner", "format", "needs_attention", "requested_media",
                         "pickup_location", "level_of_service", "maximum_fee")
# An incoming general message nobody has marked read: the predicate of a small partial index
# (migration 0013) that the listing's "unread messages" facet and filter read.
UNREAD_PREDICATE = "direction = 'in' AND read_at IS NULL"


class BorrowingRequest(Base):
    """A request we (the requesting agency) send to partners: the borrowing form's
    fields (docs/request-fields.md), plus the core's state."""

    __tablename__ = "borrowing_requests"
    __table_args__ = (
        # The staff API's listing (gateway/api/queries.py, migration 0002): a covering index, so
        # that filters, facets, free text and sort keys are answered from it without reading the
        # wide rows (each carries the core's state JSON). Built on SQLite only: PostgreSQL compresses
        # or moves such values out of line (TOAST), and a B-tree entry there is capped at ~2.7 KB,
        # which long titles would exceed; `WHERE false` makes it an empty partial index on PostgreSQL.
        # Migration 0013 added the staff page's facet columns (requested media .. maximum fee) after
        # needs_attention, so that all the row facets are grouped in index order.
        Index("ix_borrowing_requests_listing", *LISTING_FACET_COLUMNS,
              "requester", "created_at", "updated_at", "needed_by", "due_date", "title", "author", "isbn", "issn",
              "oclc_number", "external_id", postgresql_where=text("false")),
        # Its PostgreSQL counterpart (migration 0004): the narrow columns only, so that facets, the
        # rota filter and deep pages are answered by index-only scans instead of reading the wide
        # rows; empty (`WHERE false`) on SQLite, which has the covering index above. Free text on
        # PostgreSQL uses a trigram index that 0004 builds when pg_trgm can be installed.
        # Migration 0013 made the staff page's facet columns keys too (requested media .. maximum
        # fee): grouped in index order, with no sort (INCLUDEd they needed an incremental sort).
        Index("ix_borrowing_requests_facets", *LISTING_FACET_COLUMNS,
              postgresql_include=["requester", "created_at", "updated_at", "needed_by", "id", "due_date"],
              sqlite_where=text("false")),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # Our requestingAgencyRequestId, or the id given by the system the request came from. Unique.
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True)

    # --- status (a stable code of the core's state tables) ---------------------------------------
    status: Mapped[str] = mapped_column(CODE, default="CREATED", index=True)
    previous_status: Mapped[str | None] = mapped_column(CODE)
    needs_attention: Mapped[bool] = mapped_column(Boolean, default=False)
    attention_reason: Mapped[str | None] = mapped_column(Text)
    # The agency of the rota entry currently holding the request (denormalised for listing).
    active_partner: Mapped[str | None] = mapped_column(AGENCY, index=True)

    # --- bibliographic information ------------------------------------------------------------------
    title: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(Text)
    title_of_component: Mapped[str | None] = mapped_column(Text)  # chapter / article title
    author_of_component: Mapped[str | None] = mapped_column(Text)
    isbn: Mapped[str | None] = mapped_column(String(64))
    issn: Mapped[str | None] = mapped_column(String(64))
    oclc_number: Mapped[str | None] = mapped_column(String(64))
    # Further bibliographicItemId / bibliographicRecordId values: [{"type": ..., "value": ...}, ...]
    other_identifiers: Mapped[list[dict[str, str]] | None] = mapped_column(JSONType)
    publisher: Mapped[str | None] = mapped_column(Text)
    publication_date: Mapped[str | None] = mapped_column(String(64))  # free text, as ISO 18626 has it
    edition: Mapped[str | None] = mapped_column(String(200))
    volume: Mapped[str | None] = mapped_column(String(200))
    issue: Mapped[str | None] = mapped_column(String(200))
    pages: Mapped[str | None] = mapped_column(String(200))

    # --- requester ----------------------------------------------------------------------------------
    requester: Mapped[str] = mapped_column(String(200), index=True)  # patron identifier
    requester_name: Mapped[str | None] = mapped_column(String(400))
    owner: Mapped[str | None] = mapped_column(String(200))  # the patron record's owning library

    # --- request details ----------------------------------------------------------------------------
    service_type: Mapped[str] = mapped_column(String(16), default="Loan")  # Loan / Copy
    format: Mapped[str] = mapped_column(String(64), default="Physical")
    requested_media: Mapped[str | None] = mapped_column(String(64))
    allow_other_format: Mapped[bool] = mapped_column(Boolean, default=False)
    preferred_send_method: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(64))
    needed_by: Mapped[date | None] = mapped_column(index=True)  # a calendar date, no time zone
    delivery_location: Mapped[str] = mapped_column(String(64), default="library")
    pickup_location: Mapped[str | None] = mapped_column(String(200))
    reading_room_only: Mapped[bool] = mapped_column(Boolean, default=False)
    willing_to_pay: Mapped[bool] = mapped_column(Boolean, default=False)
    needs_patron_information: Mapped[bool] = mapped_column(Boolean, default=False)
    agree_to_copyright_terms: Mapped[bool] = mapped_column(Boolean, default=False)
    maximum_fee: Mapped[Decimal | None] = mapped_column()
    currency: Mapped[str | None] = mapped_column(String(3))
    level_of_service: Mapped[str | None] = mapped_column(String(64))
    request_note: Mapped[str | None] = mapped_column(Text)
    due_date: Mapped[datetime | None] = mapped_column(index=True)  # the list's "due date" sort (0013)

    # --- bookkeeping --------------------------------------------------------------------------------
    slip_printed_at: Mapped[datetime | None] = mapped_column()  # the book strap's last "Mark as printed"
    extra: Mapped[dict[str, Any]] = mapped_column(MutableJSON, default=dict)  # state the core keeps
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}

    rota: Mapped[list[RotaEntry]] = relationship(
        back_populates="request",
        order_by="RotaEntry.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    history: Mapped[list[History]] = relationship(
        order_by="History.id", cascade="all, delete-orphan", passive_deletes=True
    )
    parameters: Mapped[list[Parameter]] = relationship(
        order_by="Parameter.key", cascade="all, delete-orphan", passive_deletes=True
    )
    general_messages: Mapped[list[GeneralMessage]] = relationship(
        order_by="GeneralMessage.id", cascade="all, delete-orphan", passive_deletes=True
    )
    notes: Mapped[list[Note]] = relationship(
        order_by="Note.id", cascade="all, delete-orphan", passive_deletes=True
    )
    received_items: Mapped[list[ReceivedItem]] = relationship(
        order_by="ReceivedItem.id", cascade="all, delete-orphan", passive_deletes=True
    )
    attachments: Mapped[list[Attachment]] = relationship(
        order_by="Attachment.id", cascade="all, delete-orphan", passive_deletes=True
    )


class RotaEntry(Base):
    """One lending partner in a borrowing request's rota (its state: pending, active, rejected,
    cancelled, skipped, supplied). A partner appears once per rota."""

    __tablename__ = "rota_entries"
    __table_args__ = (
        UniqueConstraint("request_id", "agency"),
        Index(None, "request_id", "position"),
        Index(None, "state", "deadline_at"),
        Index(None, "agency", "request_id"),  # the staff API's "partner anywhere in the rota" filter
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    request_id: Mapped[int] = _fk("borrowing_requests.id", nullable=False)
    position: Mapped[int] = mapped_column(Integer)
    agency: Mapped[str] = mapped_column(AGENCY, index=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    last_status: Mapped[str | None] = mapped_column(CODE)
    last_reason: Mapped[str | None] = mapped_column(CODE)
    last_answer: Mapped[str | None] = mapped_column(Text)
    supplying_agency_request_id: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime | None] = mapped_column()
    deadline_at: Mapped[datetime | None] = mapped_column()
    status_request_sent_at: Mapped[datetime | None] = mapped_column()
    # The rest of the core's per-entry state (confirmed_at, loan conditions, offered costs, ...).
    extra: Mapped[dict[str, Any]] = mapped_column(MutableJSON, default=dict)

    request: Mapped[BorrowingRequest] = relationship(back_populates="rota")


class LendingRequest(Base):
    """A request a partner sent us (we are the supplying agency). Request ids are scoped per
    requesting agency, hence the composite unique key."""

    __tablename__ = "lending_requests"
    __table_args__ = (
        UniqueConstraint(
            "requesting_agency", "requesting_agency_request_id", name="uq_lending_requests_request_key"
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    requesting_agency: Mapped[str] = mapped_column(AGENCY)
    requesting_agency_request_id: Mapped[str] = mapped_column(String(200))
    supplying_agency: Mapped[str] = mapped_column(AGENCY)
    status: Mapped[str] = mapped_column(CODE, index=True)
    previous_status: Mapped[str | None] = mapped_column(CODE)
    needs_attention: Mapped[bool] = mapped_column(Boolean, default=False)
    title: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(Text)
    service_type: Mapped[str | None] = mapped_column(String(16))
    due_date: Mapped[datetime | None] = mapped_column()
    # When a Tick would next change the request (its expiry), or NULL: the timer's indexed lookup.
    deadline_at: Mapped[datetime | None] = mapped_column(index=True)
    raw_request_id: Mapped[int | None] = _fk("raw_messages.id", nullable=True, ondelete="SET NULL")
    slip_printed_at: Mapped[datetime | None] = mapped_column()  # the pull slip's last "Mark as printed"
    extra: Mapped[dict[str, Any]] = mapped_column(MutableJSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}

    raw_request: Mapped[RawMessage | None] = relationship()
    history: Mapped[list[History]] = relationship(
        order_by="History.id", cascade="all, delete-orphan", passive_deletes=True
    )
    general_messages: Mapped[list[GeneralMessage]] = relationship(
        order_by="GeneralMessage.id", cascade="all, delete-orphan", passive_deletes=True
    )
    notes: Mapped[list[Note]] = relationship(
        order_by="Note.id", cascade="all, delete-orphan", passive_deletes=True
    )
    attachments: Mapped[list[Attachment]] = relationship(
        order_by="Attachment.id", cascade="all, delete-orphan", passive_deletes=True
    )


class RawMessage(Base):
    """Every ISO 18626 message in or out, verbatim, with the confirmation that answered it.

    The idempotency key: a message received twice (same sender, kind, request id, timestamp and
    content) is the same message. The content is the SHA-256 of the message's canonical form
    (`gateway.messages.identity`), so a copy that differs only in indentation or serialisation
    is a duplicate, and one that differs in any value is not. For `direction='in'` the partner
    is the sender; for `'out'` the recipient. NULLs in the key (a message too broken to tell)
    never collide, which is right: such messages cause no transition.
    """

    __tablename__ = "raw_messages"
    __table_args__ = (
        UniqueConstraint(
            "direction",
            "partner_agency",
            "kind",
            "requesting_agency",
            "requesting_agency_request_id",
            "message_timestamp",
            "content_sha256",
            name="uq_raw_messages_idempotency",
        ),
        CheckConstraint("direction IN ('in', 'out')", name="direction"),
        Index(None, "received_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    direction: Mapped[str] = mapped_column(String(3))
    partner_agency: Mapped[str | None] = mapped_column(AGENCY)
    # request | supplyingAgencyMessage | requestingAgencyMessage (None when not recognisable)
    kind: Mapped[str | None] = mapped_column(String(40))
    requesting_agency: Mapped[str | None] = mapped_column(AGENCY)
    requesting_agency_request_id: Mapped[str | None] = mapped_column(String(200))
    message_timestamp: Mapped[str | None] = mapped_column(String(64))  # as written in the header
    body: Mapped[bytes] = mapped_column(LargeBinary)
    body_sha256: Mapped[str] = mapped_column(String(64))  # hex, of the bytes as they were
    content_sha256: Mapped[str] = mapped_column(String(64))  # hex, of the canonical form (the key)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)  # or sent at, for 'out'
    confirmation: Mapped[bytes | None] = mapped_column(LargeBinary)


class History(Base):
    """The audit trail of a borrowing or lending request (the request's History tab)."""

    __tablename__ = "history"
    __table_args__ = (
        Index(None, "request_id", "at"),
        Index(None, "lending_id", "at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    request_id: Mapped[int | None] = _fk("borrowing_requests.id", nullable=True)
    lending_id: Mapped[int | None] = _fk("lending_requests.id", nullable=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))  # "staff:<id>", "partner:<agency>", "system"
    event: Mapped[str] = mapped_column(String(64))
    from_status: Mapped[str | None] = mapped_column(CODE)
    to_status: Mapped[str | None] = mapped_column(CODE)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    raw_message_id: Mapped[int | None] = _fk("raw_messages.id", nullable=True, ondelete="SET NULL")

    raw_message: Mapped[RawMessage | None] = relationship()


class Parameter(Base):
    """Key/value parameters of a borrowing request (the request's Parameters tab)."""

    __tablename__ = "parameters"
    __table_args__ = (UniqueConstraint("request_id", "key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    request_id: Mapped[int] = _fk("borrowing_requests.id", nullable=False)
    key: Mapped[str] = mapped_column(String(200))
    value: Mapped[str | None] = mapped_column(Text)


class GeneralMessage(Base):
    """Free-text messages exchanged with a partner about a request (the General Messages tab)."""

    __tablename__ = "general_messages"
    __table_args__ = (
        CheckConstraint("direction IN ('in', 'out')", name="direction"),
        Index(None, "request_id"),
        Index(None, "lending_id"),
        Index("ix_general_messages_unread", "request_id", sqlite_where=text(UNREAD_PREDICATE),
              postgresql_where=text(UNREAD_PREDICATE)),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    request_id: Mapped[int | None] = _fk("borrowing_requests.id", nullable=True)
    lending_id: Mapped[int | None] = _fk("lending_requests.id", nullable=True)
    direction: Mapped[str] = mapped_column(String(3))
    partner_agency: Mapped[str | None] = mapped_column(AGENCY)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    raw_message_id: Mapped[int | None] = _fk("raw_messages.id", nullable=True, ondelete="SET NULL")
    # An inbound note's ReShare markers as data (`messages.peers.note_markers`: seq, last_seq,
    # flags, updated_fields, cluster_id, text without them); NULL without markers and when outbound.
    markers: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # When staff marked it read; NULL while an incoming message is unread (outbound: written read).
    read_at: Mapped[datetime | None] = mapped_column()


class Note(Base):
    """Staff notes on a request (the Notes tab). Local only; never sent."""

    __tablename__ = "notes"
    __table_args__ = (Index(None, "request_id"), Index(None, "lending_id"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    request_id: Mapped[int | None] = _fk("borrowing_requests.id", nullable=True)
    lending_id: Mapped[int | None] = _fk("lending_requests.id", nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)


class ReceivedItem(Base):
    """An item received for a borrowing request (the Received Items tab)."""

    __tablename__ = "received_items"
    __table_args__ = (Index(None, "request_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    request_id: Mapped[int] = _fk("borrowing_requests.id", nullable=False)
    barcode: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_date: Mapped[datetime | None] = mapped_column()
    actor: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)


class Attachment(Base):
    """A file attached to a request (the Attachments tab). `content` is deferred: listing
    attachments does not load the bytes."""

    __tablename__ = "attachments"
    __table_args__ = (Index(None, "request_id"), Index(None, "lending_id"))

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    request_id: Mapped[int | None] = _fk("borrowing_requests.id", nullable=True)
    lending_id: Mapped[int | None] = _fk("lending_requests.id", nullable=True)
    filename: Mapped[str] = mapped_column(String(400))
    media_type: Mapped[str] = mapped_column(String(200), default="application/octet-stream")
    size: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str | None] = mapped_column(String(200))


class Outbox(Base):
    """A message waiting to go to a partner. Written in the same transaction as the step that
    decided to send it; the outbox worker delivers rows in `seq` order per (request, partner).

    state: pending -> sending -> delivered, or -> pending again (retry, `next_attempt_at`), or
    -> failed after the last attempt. While a row is `sending`, `next_attempt_at` is the end of
    the worker's lease on it: a row still `sending` after that goes back to `pending` (its outcome
    is unknown; `unknown_outcomes` counts such attempts).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("request_id", "partner_agency", "seq"),
        UniqueConstraint("lending_id", "partner_agency", "seq"),
        CheckConstraint(
            "state IN ('pending', 'sending', 'delivered', 'failed')", name="state"
        ),
        CheckConstraint("request_id IS NOT NULL OR lending_id IS NOT NULL", name="owner"),
        Index(None, "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    request_id: Mapped[int | None] = _fk("borrowing_requests.id", nullable=True)
    lending_id: Mapped[int | None] = _fk("lending_requests.id", nullable=True)
    partner_agency: Mapped[str] = mapped_column(AGENCY)
    partner_url: Mapped[str] = mapped_column(String(2000))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(40))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts whose outcome was never recorded (lease expired, or the worker died): the partner
    # may have the message, so the next send is a retry after an unknown outcome.
    unknown_outcomes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column()
    # The raw_messages row ('out', with the partner's confirmation) written when it was delivered.
    raw_message_id: Mapped[int | None] = _fk("raw_messages.id", nullable=True, ondelete="SET NULL")


class SeenSignature(Base):
    """An HMAC signature a partner has used, with the HTTP status its request was answered with
    (the replay guard, docs/inbound-limits.md). Durable, so a replay is refused after a restart
    too; a signature whose request failed (5xx) does not count as used. Pruned once expired (by
    then the signature's timestamp is outside the window anyway)."""

    __tablename__ = "seen_signatures"
    __table_args__ = (Index(None, "expires_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    signature: Mapped[str] = mapped_column(String(128), unique=True)
    partner_agency: Mapped[str] = mapped_column(AGENCY)
    status: Mapped[int] = mapped_column(Integer)  # HTTP status of the answer
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class StaffAccount(Base):
    """A person who signs in to the staff pages (service/accounts.py). The password is kept only
    as an Argon2id hash."""

    __tablename__ = "staff_accounts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)  # lower case
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(CODE)  # viewer | staff | admin
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column()


class SignInThrottle(Base):
    """Recent failed sign-ins of one username, known or not, and its lock: in the database, so
    that every gateway process counts the same failures. Removed by a successful sign-in; a row
    whose window and lock have both passed is stale and pruned."""

    __tablename__ = "sign_in_throttles"
    __table_args__ = (Index(None, "window_started_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    username: Mapped[str] = mapped_column(String(200), unique=True)  # as tried, lower case, clipped
    failures: Mapped[int] = mapped_column(Integer, default=0)  # within the window
    window_started_at: Mapped[datetime] = mapped_column()  # the window's first failure
    locked_until: Mapped[datetime | None] = mapped_column()


class AuditBudget(Base):
    """How many audit rows each source address has caused in the current window (of refused,
    unauthenticated posts; transport/audit_budget.py): in the database, so that every gateway
    process spends the same budget. One row per address, reset when a new window starts; rows
    of windows long over are pruned by the timer."""

    __tablename__ = "audit_budget"
    __table_args__ = (Index(None, "window_start"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(200), unique=True)  # the address, clipped
    window_start: Mapped[datetime] = mapped_column()
    used: Mapped[int] = mapped_column(Integer)  # audit rows written in that window


class StaffView(Base):
    """A named view of the borrowing requests list a staff member saved: the list's query string
    (filters and sort), checked again each time it is opened (service/views.py)."""

    __tablename__ = "staff_views"
    __table_args__ = (UniqueConstraint("username", "name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    query: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StaffPreference(Base):
    """What a staff member last chose on the borrowing requests list (its query string), restored
    when they come back to the list without one."""

    __tablename__ = "staff_preferences"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    list_query: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# Core handles for the hot path.
borrowing_requests_t: Table = BorrowingRequest.__table__  # type: ignore[assignment]
rota_entries_t: Table = RotaEntry.__table__  # type: ignore[assignment]
lending_requests_t: Table = LendingRequest.__table__  # type: ignore[assignment]
raw_messages_t: Table = RawMessage.__table__  # type: ignore[assignment]
history_t: Table = History.__table__  # type: ignore[assignment]
parameters_t: Table = Parameter.__table__  # type: ignore[assignment]
general_messages_t: Table = GeneralMessage.__table__  # type: ignore[assignment]
notes_t: Table = Note.__table__  # type: ignore[assignment]
received_items_t: Table = ReceivedItem.__table__  # type: ignore[assignment]
attachments_t: Table = Attachment.__table__  # type: ignore[assignment]
outbox_t: Table = Outbox.__table__  # type: ignore[assignment]
seen_signatures_t: Table = SeenSignature.__table__  # type: ignore[assignment]
staff_accounts_t: Table = StaffAccount.__table__  # type: ignore[assignment]
sign_in_throttles_t: Table = SignInThrottle.__table__  # type: ignore[assignment]
audit_budget_t: Table = AuditBudget.__table__  # type: ignore[assignment]
staff_views_t: Table = StaffView.__table__  # type: ignore[assignment]
staff_preferences_t: Table = StaffPreference.__table__  # type: ignore[assignment]


# Indexes the migrations build but the models do not declare, so that schema comparison
# (autogenerate, the tests) leaves them alone: the PostgreSQL trigram index of migration 0004 is
# an expression over an extension's operator class, and exists only where pg_trgm could be installed.
UNMODELLED_INDEXES = frozenset({"ix_borrowing_requests_search"})


def compared(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic's `include_object`: everything but UNMODELLED_INDEXES."""
    return not (type_ == "index" and name in UNMODELLED_INDEXES)
