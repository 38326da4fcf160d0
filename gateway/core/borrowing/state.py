"""Plain data of one borrowing request and of what a step decided.

Everything here is immutable; `decide` returns a new BorrowingState inside a Decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, Mapping

from gateway.messages.codes import Action, RequestType, ServiceType

from ..common import with_changes
from ..errors import InvalidInput
from ..machine import Decision as KernelDecision
from ..rota import EntryState, Rota, RotaEntry, current
from .statuses import BorrowingStatus as S


@dataclass(frozen=True)
class RequestDetails:
    """The "general information" tab: what staff or the patron filled in.

    Field names follow the store's borrowing_requests columns."""

    requester: str
    pickup_location: str
    requester_name: str | None = None
    owner: str | None = None
    # bibliographic information
    title: str | None = None
    author: str | None = None
    title_of_component: str | None = None
    author_of_component: str | None = None
    isbn: str | None = None
    issn: str | None = None
    oclc_number: str | None = None
    other_identifiers: tuple[tuple[str, str], ...] = ()  # (type, value)
    publisher: str | None = None
    publication_date: str | None = None
    edition: str | None = None
    volume: str | None = None
    issue: str | None = None
    pages: str | None = None
    # request details
    format: str = "Physical"  # Physical | Digital
    requested_media: str | None = None
    allow_other_format: bool = False
    preferred_send_method: str | None = None
    language: str | None = None
    needed_by: date | None = None
    delivery_location: str = "library"
    reading_room_only: bool = False
    willing_to_pay: bool = False
    needs_patron_information: bool = False
    agree_to_copyright_terms: bool = False
    maximum_fee: Decimal | None = None
    currency: str | None = None
    level_of_service: str | None = None
    request_note: str | None = None

    def __post_init__(self) -> None:
        for name in ("requester", "pickup_location"):
            if not (getattr(self, name) or "").strip():
                raise InvalidInput(name, "is required")

    @property
    def service_type(self) -> ServiceType:
        return ServiceType.Copy if self.format.casefold() == "digital" else ServiceType.Loan

    def with_changes(self, changes: Mapping[str, Any]) -> RequestDetails:
        return with_changes(self, changes, "borrowing request")


class Attention(StrEnum):
    """Why a request needs staff. Status-bound flags follow the status automatically."""

    NO_PARTNERS = "no_partners"  # LOCATE_FAILED
    ROTA_EXHAUSTED = "rota_exhausted"  # REJECTED_BY_PARTNER kept for review
    CONDITIONS_OFFERED = "conditions_offered"  # CONDITIONAL waits for accept/reject
    RETRY_OFFERED = "retry_offered"  # RETRY_POSSIBLE waits for retry/skip
    SEND_FAILED = "send_failed"  # the outbox gave up on a message
    CANCEL_REFUSED = "cancel_refused"  # a partner we left answered our Cancel with N
    CANCEL_OVERDUE = "cancel_overdue"  # no answer to our Cancel by the response deadline
    MESSAGE_UNREAD = "message_unread"  # a partner's general message staff have not marked read


STATUS_BOUND = frozenset({
    Attention.NO_PARTNERS, Attention.ROTA_EXHAUSTED, Attention.CONDITIONS_OFFERED, Attention.RETRY_OFFERED,
})
# Flags an action of their own clears, not `acknowledge`: reading the messages, settling the cancel.
CLEARED_BY_ACTION = frozenset({Attention.MESSAGE_UNREAD, Attention.CANCEL_OVERDUE})


class ItemLocation(StrEnum):
    PARTNER = "partner"  # not shipped yet, or in transit to us
    LIBRARY = "library"
    PATRON = "patron"
    RETURNED = "returned"  # shipped back to the lender


Supply = Literal["loan", "copy"]


@dataclass(frozen=True)
class CancelInfo:
    """Who asked to cancel the request and why; kept after the cancel for the record."""

    by: str
    by_patron: bool
    reason: str | None = None
    note: str | None = None
    notify_patron: bool = False
    sent_at: datetime | None = None  # our Cancel went to the partner: its answer is due from here


@dataclass(frozen=True)
class BorrowingState:
    details: RequestDetails
    status: S
    rota: Rota = ()
    previous_status: S | None = None  # restored when a Cancel (or its delivery) fails
    cancel: CancelInfo | None = None
    due_date: datetime | None = None
    supply: Supply | None = None  # what the lender shipped: a returnable loan or a copy
    location: ItemLocation = ItemLocation.PARTNER
    flags: frozenset[Attention] = frozenset()

    @property
    def current(self) -> RotaEntry | None:
        """The partner we deal with now: ACTIVE (asked) or SUPPLIED (shipped)."""
        return current(self.rota)

    @property
    def active(self) -> RotaEntry | None:
        entry = self.current
        return entry if entry is not None and entry.state is EntryState.ACTIVE else None

    @property
    def pending(self) -> str | None:
        """The operation we wait for a partner to finish, if any."""
        entry = self.active
        if self.status is S.WAITING_FOR_CANCEL_RESPONSE:
            return "cancel"
        if self.status is S.RENEW_REQUESTED:
            return "renew"
        if entry is not None and entry.confirmed_at is None and not entry.undelivered:
            return "request"
        if entry is not None and entry.status_requested_at and entry.answered_at is None:
            return "status_request"
        return None

    @property
    def needs_attention(self) -> bool:
        return bool(self.flags)


@dataclass(frozen=True)
class Outgoing:
    """A message for the outbox. The service builds the ISO XML from it and the request."""

    partner: str
    kind: Literal["request", "requestingAgencyMessage"]
    action: Action | None = None
    note: str | None = None
    request_type: RequestType | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReceivedItem:
    """The "received items" tab: one item staff took in (barcode None: received without one)."""

    at: datetime
    by: str
    barcode: str | None
    note: str | None = None


@dataclass(frozen=True)
class Decision(KernelDecision):
    state: BorrowingState
    previous: BorrowingState | None
    outgoing: tuple[Outgoing, ...] = ()
    received: tuple[ReceivedItem, ...] = ()

    @property
    def changes_nothing(self) -> bool:
        """Nothing to write: same state, nothing sent or recorded (e.g. a tick with nothing due)."""
        return (self.previous is not None and self.state == self.previous
                and not (self.outgoing or self.history or self.messages or self.notes or self.received))

    @property
    def rota_changed(self) -> bool:
        return self.previous is None or self.previous.rota != self.state.rota


def status_flags(state: BorrowingState) -> frozenset[Attention]:
    """The flags that follow from the status alone (kept in sync by every step)."""
    flags: set[Attention] = set()
    if state.status is S.LOCATE_FAILED:
        flags.add(Attention.NO_PARTNERS)
    elif state.status is S.REJECTED_BY_PARTNER and state.current is None:
        flags.add(Attention.ROTA_EXHAUSTED)
    elif state.status is S.CONDITIONAL:
        flags.add(Attention.CONDITIONS_OFFERED)
    elif state.status is S.RETRY_POSSIBLE:
        flags.add(Attention.RETRY_OFFERED)
    return frozenset(flags)


def stale_flags(state: BorrowingState) -> frozenset[Attention]:
    """Flags that lost their meaning with the status: an overdue Cancel is settled once the
    request no longer waits for the answer (it came, or staff settled it)."""
    if state.status is not S.WAITING_FOR_CANCEL_RESPONSE:
        return frozenset({Attention.CANCEL_OVERDUE}) & state.flags
    return frozenset()
