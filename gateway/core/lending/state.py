"""Plain data of one lending request and of what a step decided.

Everything here is immutable; `decide_lending` returns a new LendingState inside a
LendingDecision. History, general messages and notes are the types both sides share
(`core.common`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Mapping

from gateway.messages.codes import ReasonForMessage, RequestSubType, ServiceType, Status, YesNo

from ..common import HistoryEntry, with_changes
from ..machine import Decision as KernelDecision
from .statuses import LendingStatus as L

Costs = tuple[tuple[Decimal, str], ...]
"""(amount, ISO 4217 currency) pairs."""


@dataclass(frozen=True)
class LendingDetails:
    """What the borrower asked for: the parts of its ISO `request` staff work with.

    The service fills it from the parsed request (the raw XML is kept verbatim anyway)."""

    service_type: ServiceType = ServiceType.Loan
    title: str | None = None
    author: str | None = None
    title_of_component: str | None = None
    author_of_component: str | None = None
    supplier_unique_record_id: str | None = None
    isbn: str | None = None
    issn: str | None = None
    other_identifiers: tuple[tuple[str, str], ...] = ()  # (code, value), e.g. ("OCLC", "123")
    publisher: str | None = None
    publication_date: str | None = None
    edition: str | None = None
    volume: str | None = None
    issue: str | None = None
    pages: str | None = None
    request_sub_types: tuple[RequestSubType, ...] = ()
    service_level: str | None = None
    item_format: str | None = None
    need_before: datetime | None = None
    patron_id: str | None = None
    max_cost: Decimal | None = None
    currency: str | None = None
    requesting_agency_name: str | None = None
    delivery_address: str | None = None
    note: str | None = None  # serviceInfo/note

    def changed_fields(self, other: LendingDetails) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name))

    def with_changes(self, changes: Mapping[str, Any]) -> LendingDetails:
        return with_changes(self, changes, "lending request")


class Pending(StrEnum):
    """A question from the borrower that staff have not answered yet (a sub-state)."""

    CANCEL = "cancel"  # the borrower sent Cancel: answer_cancel:Y / answer_cancel:N
    RENEW = "renew"  # the borrower sent Renew: answer_renew:Y (new due date) / answer_renew:N


class LendingAttention(StrEnum):
    """Why a lending request needs staff. Status-bound flags follow `pending` automatically."""

    CANCEL_REQUESTED = "cancel_requested"  # bound: pending is CANCEL
    RENEW_REQUESTED = "renew_requested"  # bound: pending is RENEW
    LOST = "lost"  # the borrower reported the item lost (2021 action Lost)
    REMINDER = "reminder"  # the borrower sent a `request` of type Reminder
    SEND_FAILED = "send_failed"  # the outbox gave up on one of our messages
    MESSAGE_UNREAD = "message_unread"  # a general message from the borrower staff have not marked read


STATUS_BOUND = frozenset({LendingAttention.CANCEL_REQUESTED, LendingAttention.RENEW_REQUESTED})
# Cleared by an action of its own (mark-messages-read), not by `acknowledge`.
CLEARED_BY_ACTION = frozenset({LendingAttention.MESSAGE_UNREAD})


@dataclass(frozen=True)
class LendingState:
    partner: str  # the requesting agency "TYPE:VALUE"
    details: LendingDetails
    status: L
    received_at: datetime  # when the current request (or its retry) arrived: expiry runs from here
    iso_status: Status = Status.RequestReceived  # what the borrower is told (StatusRequestResponse)
    responded: bool = False  # a RequestResponse went out for the current request
    pending: Pending | None = None
    pending_since: datetime | None = None
    loan_conditions: tuple[str, ...] = ()  # offered (CONDITIONAL), then agreed: go out with the item
    offered_costs: Costs = ()
    reason: str | None = None  # last reasonUnfilled / reasonRetry we gave
    due_date: datetime | None = None
    item_ids: tuple[str, ...] = ()
    shipped_at: datetime | None = None
    borrower_received_at: datetime | None = None  # the borrower's Received
    return_shipped_at: datetime | None = None  # the borrower's ShippedReturn
    # Header timestamp of the borrower's latest message that changed the request: an older one
    # arriving later is stale (docs/message-order-and-duplicates.md).
    borrower_timestamp: datetime | None = None
    flags: frozenset[LendingAttention] = frozenset()

    @property
    def needs_attention(self) -> bool:
        return bool(self.flags)


def status_flags(state: LendingState) -> frozenset[LendingAttention]:
    """The flags that follow from the state alone (kept in sync by every step)."""
    if state.pending is Pending.CANCEL:
        return frozenset({LendingAttention.CANCEL_REQUESTED})
    if state.pending is Pending.RENEW:
        return frozenset({LendingAttention.RENEW_REQUESTED})
    return frozenset()


@dataclass(frozen=True, kw_only=True)
class OutgoingSupplierMessage:
    """A supplyingAgencyMessage for the outbox, as plain data. The service builds the XML from
    it and the request (headers, our agency id, version and profile quirks)."""

    partner: str  # the requesting agency it goes to
    status: Status
    reason: ReasonForMessage
    answer: YesNo | None = None
    note: str | None = None
    reason_unfilled: str | None = None
    reason_retry: str | None = None
    retry_after: datetime | None = None
    retry_before: datetime | None = None
    loan_conditions: tuple[str, ...] = ()
    offered_costs: Costs = ()
    due_date: datetime | None = None
    item_ids: tuple[str, ...] = ()
    delivery_costs: Costs = ()
    url: str | None = None
    sent_via: str | None = None
    date_sent: datetime | None = None  # deliveryInfo/dateSent of Loaned / CopyCompleted


LendingHistoryEntry = HistoryEntry


@dataclass(frozen=True)
class LendingDecision(KernelDecision):
    state: LendingState
    previous: LendingState | None
    outgoing: tuple[OutgoingSupplierMessage, ...] = ()
