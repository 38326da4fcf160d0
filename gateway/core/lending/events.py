"""Inputs of the lending state machine: the borrower's messages, staff actions, system events.

Every event carries its time (timezone-aware; the core has no clock) and maps to one event key
of the transition table (`table.py`, which derives the borrower's keys: ISO codes, an action or
a request type); staff keys are snake_case, and each staff event knows its API name (`api`).
`AddNote`, `SendMessage`, `MarkMessagesRead` and `Tick` are shared with the borrowing side
(`core.common`): they mean the same on both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from gateway.messages.codes import Action, ReasonForMessage, RequestType, Status, YesNo
from gateway.messages.peers import condition_answer

from ..common import AddNote, MarkMessagesRead, SendMessage, StaffEvent, Tick, api_names, aware
from ..errors import InvalidInput
from .state import Costs, LendingAttention, LendingDetails
from .table import borrower_key, request_key

__all__ = [
    "RequesterMessage", "IncomingRequest", "AddNote", "SendMessage", "MarkMessagesRead", "Tick",
    "MessageUndelivered",
    "ExpectToSupply", "WillSupply", "OfferConditions", "Ship", "CompleteCopy", "MarkUnfilled", "OfferRetry",
    "AnswerCancel", "AnswerRenew", "MarkOverdue", "Recall", "CheckIn", "CompleteWithoutReturn", "ClearFlag",
    "conditions_answer",
]


# --- the borrower (requesting agency) ------------------------------------------------------

# "ACCEPT", "REJECT" or None for the borrower's answer to our loan conditions: ReShare's markers
# first, else Alma's free text (docs/state-machines.md). One rule for the whole project, kept in
# the pure message layer; exported here under the lending core's name.
conditions_answer = condition_answer


@dataclass(frozen=True, kw_only=True)
class RequesterMessage:
    """An incoming requestingAgencyMessage, reduced to what the state machine needs."""

    partner: str  # requesting agency "TYPE:VALUE"
    action: Action
    note: str | None = None
    received_at: datetime
    # The header's timestamp (the borrower's clock): orders its messages when they arrive out of
    # order (docs/message-order-and-duplicates.md).
    timestamp: datetime | None = None

    def __post_init__(self) -> None:
        aware(self.received_at, "received_at")
        aware(self.timestamp, "timestamp")

    @property
    def at(self) -> datetime:
        return self.received_at

    @property
    def key(self) -> str:
        return borrower_key(self.action, self.note)


@dataclass(frozen=True, kw_only=True)
class IncomingRequest:
    """An incoming ISO `request`. Type New starts a lending request (`decide_lending(None, ...)`);
    Retry answers our RetryPossible with (possibly) changed fields; Reminder nudges us."""

    partner: str
    details: LendingDetails
    received_at: datetime
    request_type: RequestType = RequestType.New

    def __post_init__(self) -> None:
        aware(self.received_at, "received_at")

    @property
    def at(self) -> datetime:
        return self.received_at

    @property
    def key(self) -> str:
        return request_key(self.request_type)


# --- staff actions (StaffEvent: at, by) --------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ExpectToSupply(StaffEvent):
    key: ClassVar[str] = "expect_to_supply"
    api: ClassVar[str] = "expect-to-supply"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class WillSupply(StaffEvent):
    """Will supply; from CONDITIONAL it withdraws the conditions."""

    key: ClassVar[str] = "will_supply"
    api: ClassVar[str] = "will-supply"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class OfferConditions(StaffEvent):
    """Supply on conditions (loanCondition) and/or at a cost (offeredCosts); then wait for the
    borrower. Sent with status WillSupply, or ExpectToSupply."""

    key: ClassVar[str] = "conditional"
    api: ClassVar[str] = "conditional"
    loan_conditions: tuple[str, ...] = ()
    offered_costs: Costs = ()
    status: Status = Status.WillSupply
    note: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.loan_conditions or self.offered_costs):
            raise InvalidInput("loan_conditions", "give loan conditions or offered costs")
        if self.status not in (Status.WillSupply, Status.ExpectToSupply):
            raise InvalidInput("status", "conditions go with WillSupply or ExpectToSupply")


@dataclass(frozen=True, kw_only=True)
class Ship(StaffEvent):
    """The loan leaves: Loaned with its due date, item ids and delivery costs."""

    key: ClassVar[str] = "ship"
    api: ClassVar[str] = "ship"
    due_date: datetime
    item_ids: tuple[str, ...] = ()
    delivery_costs: Costs = ()
    sent_via: str | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        aware(self.due_date, "due_date")
        if self.due_date <= self.at:
            raise InvalidInput("due_date", "must be after the shipping time")


@dataclass(frozen=True, kw_only=True)
class CompleteCopy(StaffEvent):
    """The copy was delivered: CopyCompleted with its URL / delivery details."""

    key: ClassVar[str] = "copy_completed"
    api: ClassVar[str] = "copy-completed"
    url: str | None = None
    item_ids: tuple[str, ...] = ()
    delivery_costs: Costs = ()
    sent_via: str | None = None
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class MarkUnfilled(StaffEvent):
    key: ClassVar[str] = "unfilled"
    api: ClassVar[str] = "unfilled"
    reason_unfilled: str | None = None  # open list ReasonUnfilled: NotHeld, NotOnShelf, ...
    note: str | None = None  # Alma lenders start it with DUPLICATE for duplicate requests


@dataclass(frozen=True, kw_only=True)
class OfferRetry(StaffEvent):
    """RetryPossible: the borrower may send the request again (type Retry) with changes."""

    key: ClassVar[str] = "retry_possible"
    api: ClassVar[str] = "retry-possible"
    reason_retry: str  # open list ReasonRetry: OnLoan, NotFoundAsCited, CostExceedsMaxCost, ...
    retry_after: datetime | None = None
    retry_before: datetime | None = None
    loan_conditions: tuple[str, ...] = ()
    offered_costs: Costs = ()
    note: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.reason_retry or "").strip():
            raise InvalidInput("reason_retry", "is required")
        aware(self.retry_after, "retry_after")
        aware(self.retry_before, "retry_before")
        if self.retry_after and self.retry_before and self.retry_before < self.retry_after:
            raise InvalidInput("retry_before", "must not be before retry_after")


def _answer_key(name: str, answer: YesNo) -> str:
    return f"{name}:{answer.value}"


@dataclass(frozen=True, kw_only=True)
class AnswerCancel(StaffEvent):
    """Y: CancelResponse Cancelled Y, the request ends CANCELLED. N: CancelResponse with the
    current status, N; the request goes on."""

    api: ClassVar[str] = "answer-cancel"
    answer: YesNo
    note: str | None = None

    @property
    def key(self) -> str:  # type: ignore[override]
        return _answer_key("answer_cancel", self.answer)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(_answer_key("answer_cancel", answer) for answer in YesNo)


@dataclass(frozen=True, kw_only=True)
class AnswerRenew(StaffEvent):
    """Y with the new due date: RenewResponse Loaned Y. N: RenewResponse N, due date unchanged."""

    api: ClassVar[str] = "answer-renew"
    answer: YesNo
    due_date: datetime | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        aware(self.due_date, "due_date")
        if self.answer is YesNo.Y and self.due_date is None:
            raise InvalidInput("due_date", "is required to grant a renewal")

    @property
    def key(self) -> str:  # type: ignore[override]
        return _answer_key("answer_renew", self.answer)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(_answer_key("answer_renew", answer) for answer in YesNo)


@dataclass(frozen=True, kw_only=True)
class MarkOverdue(StaffEvent):
    key: ClassVar[str] = "mark_overdue"
    api: ClassVar[str] = "mark-overdue"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class Recall(StaffEvent):
    key: ClassVar[str] = "recall"
    api: ClassVar[str] = "recall"
    due_date: datetime | None = None  # the new, earlier due date, if any
    note: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        aware(self.due_date, "due_date")


@dataclass(frozen=True, kw_only=True)
class CheckIn(StaffEvent):
    """The loan is back on our shelves: LoanCompleted (after ShippedReturn, or without it)."""

    key: ClassVar[str] = "check_in"
    api: ClassVar[str] = "check-in"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class CompleteWithoutReturn(StaffEvent):
    """End a loan that will not come back (lost, kept, paid for): CompletedWithoutReturn."""

    key: ClassVar[str] = "complete_without_return"
    api: ClassVar[str] = "complete-without-return"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class ClearFlag(StaffEvent):
    """Staff dealt with a flag no status change clears (lost, reminder, send failed)."""

    key: ClassVar[str] = "acknowledge"
    api: ClassVar[str] = "acknowledge"
    flag: LendingAttention


# --- system ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MessageUndelivered:
    """The outbox gave up on one of our supplyingAgencyMessages (or the borrower refused it)."""

    partner: str
    at: datetime
    status: Status | None = None
    reason: ReasonForMessage | None = None

    key: ClassVar[str] = "message_undelivered"

    def __post_init__(self) -> None:
        aware(self.at, "at")


STAFF_EVENTS: tuple[type[StaffEvent], ...] = (
    AddNote, SendMessage, MarkMessagesRead, ClearFlag, ExpectToSupply, WillSupply, OfferConditions, OfferRetry,
    MarkUnfilled, Ship, CompleteCopy, AnswerCancel, AnswerRenew, MarkOverdue, Recall, CheckIn, CompleteWithoutReturn,
)
API_NAMES: dict[str, str] = api_names(*STAFF_EVENTS)
LendingEvent = RequesterMessage | IncomingRequest | StaffEvent | Tick | MessageUndelivered
