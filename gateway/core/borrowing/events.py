"""Inputs of the borrowing state machine: staff actions, partner messages, system events.

Every event carries its time (timezone-aware; the core has no clock) and maps to one event
key of the transition table (`transitions.py`). Staff events have a fixed `key`; a partner
message's key is derived from its reason, status and answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal, Mapping

from gateway.messages.codes import Action, ReasonForMessage, Status, YesNo

from ..errors import InvalidInput
from .state import Attention, RequestDetails


def _aware(value: datetime | None, name: str) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise InvalidInput(name, "must be a timezone-aware datetime")


# --- staff (and patron) actions ---------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StaffEvent:
    key: ClassVar[str]
    at: datetime
    by: str = "staff"  # user id; "patron:<id>" when a patron acts

    def __post_init__(self) -> None:
        _aware(self.at, "at")


@dataclass(frozen=True, kw_only=True)
class Create(StaffEvent):
    """Save the form. With partners the request goes to the first at once."""

    key: ClassVar[str] = "create"
    details: RequestDetails
    partners: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Edit(StaffEvent):
    key: ClassVar[str] = "edit"
    changes: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class SendMessage(StaffEvent):
    """General message: a Notification to the current partner."""

    key: ClassVar[str] = "send_message"
    note: str


@dataclass(frozen=True, kw_only=True)
class AddNote(StaffEvent):
    """Internal note; nothing is sent."""

    key: ClassVar[str] = "add_note"
    text: str


@dataclass(frozen=True, kw_only=True)
class Receive(StaffEvent):
    key: ClassVar[str] = "receive"
    note: str | None = None
    items: tuple[str, ...] = ()  # barcodes of the received items


@dataclass(frozen=True, kw_only=True)
class LoanToPatron(StaffEvent):
    key: ClassVar[str] = "loan_to_patron"


@dataclass(frozen=True, kw_only=True)
class ReturnByPatron(StaffEvent):
    key: ClassVar[str] = "return_by_patron"


@dataclass(frozen=True, kw_only=True)
class ReturnToPartner(StaffEvent):
    key: ClassVar[str] = "return_to_partner"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class Renew(StaffEvent):
    key: ClassVar[str] = "renew"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class AcceptConditions(StaffEvent):
    key: ClassVar[str] = "accept_conditions"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class RejectConditions(StaffEvent):
    key: ClassVar[str] = "reject_conditions"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class RetryRequest(StaffEvent):
    """Answer RetryPossible: send the request again (type Retry), optionally changed."""

    key: ClassVar[str] = "retry"
    changes: Mapping[str, Any] = field(default_factory=dict)
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class SkipPartner(StaffEvent):
    """Answer RetryPossible: give up on this partner and try the next."""

    key: ClassVar[str] = "skip"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class CancelRequest(StaffEvent):
    key: ClassVar[str] = "cancel"
    reason: str | None = None
    note: str | None = None
    notify_patron: bool = False
    by_patron: bool = False


@dataclass(frozen=True, kw_only=True)
class SendStatusRequest(StaffEvent):
    key: ClassVar[str] = "status_request"


@dataclass(frozen=True, kw_only=True)
class Close(StaffEvent):
    """Complete a request whose copy was received (nothing goes back to the lender)."""

    key: ClassVar[str] = "close"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class MoveUp(StaffEvent):
    key: ClassVar[str] = "move_partner"
    partner: str


@dataclass(frozen=True, kw_only=True)
class MoveDown(StaffEvent):
    key: ClassVar[str] = "move_partner"
    partner: str


@dataclass(frozen=True, kw_only=True)
class MoveSelected(StaffEvent):
    key: ClassVar[str] = "move_partner"
    partners: tuple[str, ...]
    position: int  # 0-based index the first selected entry moves to


@dataclass(frozen=True, kw_only=True)
class AddPartner(StaffEvent):
    key: ClassVar[str] = "add_partner"
    partner: str
    position: int | None = None  # None: at the end


@dataclass(frozen=True, kw_only=True)
class RemovePartner(StaffEvent):
    key: ClassVar[str] = "remove_partner"
    partner: str


@dataclass(frozen=True, kw_only=True)
class CancelPartner(StaffEvent):
    """Cancel the active partner (sends Cancel) and move on to the next."""

    key: ClassVar[str] = "cancel_partner"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class Locate(StaffEvent):
    """Manual locate and resend: add the default rota's missing partners, then send."""

    key: ClassVar[str] = "locate"
    default_rota: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class MarkMessagesRead(StaffEvent):
    """Staff have read the partner's general messages: they are no longer unread."""

    key: ClassVar[str] = "mark_messages_read"


@dataclass(frozen=True, kw_only=True)
class TreatAsCancelled(StaffEvent):
    """The partner never answered our Cancel: take the request as cancelled."""

    key: ClassVar[str] = "treat_as_cancelled"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class ResumeRequest(StaffEvent):
    """The partner never answered our Cancel: carry on as if it had refused it."""

    key: ClassVar[str] = "resume_request"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class Acknowledge(StaffEvent):
    """Staff dealt with a flag that no status change clears (send failed, cancel refused)."""

    key: ClassVar[str] = "acknowledge"
    flag: Attention


# --- partner messages ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SupplierMessage:
    """An incoming supplyingAgencyMessage, reduced to what the state machine needs."""

    partner: str  # supplying agency "TYPE:VALUE"
    reason: ReasonForMessage
    status: Status | None = None  # None: Alma's empty <status/>, "no change"
    answer: YesNo | None = None
    note: str | None = None
    reason_unfilled: str | None = None
    reason_retry: str | None = None
    loan_conditions: tuple[str, ...] = ()
    offered_costs: tuple[tuple[Decimal, str], ...] = ()
    due_date: datetime | None = None
    retry_after: datetime | None = None
    retry_before: datetime | None = None
    # ReShare's #ReShareSupplierConditionsAssumedAgreed# (PEERS §2): the supplier goes ahead with
    # the loan conditions it sent, taking them as agreed unless we reject them.
    conditions_assumed_agreed: bool = False
    received_at: datetime
    # The header's timestamp: when the partner wrote the message, by its own clock. Orders the
    # partner's messages when they arrive out of order (docs/message-order-and-duplicates.md).
    timestamp: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("received_at", "timestamp", "due_date", "retry_after", "retry_before"):
            _aware(getattr(self, name), name)

    @property
    def at(self) -> datetime:
        return self.received_at

    @property
    def is_status_response(self) -> bool:
        return self.reason is ReasonForMessage.StatusRequestResponse

    @property
    def key(self) -> str:
        reason, status = self.reason, self.status
        if reason is ReasonForMessage.RenewResponse:
            # No answer: a new due date is the lender's yes.
            return f"RenewResponse:{self.answer or (YesNo.Y if self.due_date else YesNo.N)}"
        if reason is ReasonForMessage.CancelResponse:
            yes = YesNo.Y if status is Status.Cancelled else YesNo.N
            return f"CancelResponse:{self.answer or yes}"
        if reason is ReasonForMessage.Notification or status is None:
            return "ConditionsAssumedAgreed" if self.conditions_assumed_agreed else "Notification"
        if status in (Status.WillSupply, Status.ExpectToSupply) and (self.loan_conditions or self.offered_costs):
            return "Conditional"
        return status.value


# --- system events -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Tick:
    """Time passed: deadlines are checked against `now`."""

    now: datetime

    def __post_init__(self) -> None:
        _aware(self.now, "now")

    @property
    def at(self) -> datetime:
        return self.now


@dataclass(frozen=True, kw_only=True)
class RequestConfirmed:
    """The partner answered our `request` with a confirmation OK."""

    partner: str
    now: datetime

    def __post_init__(self) -> None:
        _aware(self.now, "now")

    @property
    def at(self) -> datetime:
        return self.now


@dataclass(frozen=True, kw_only=True)
class DeliveryFailed:
    """The outbox gave up on a message after all retries (or the partner refused it)."""

    partner: str
    kind: Literal["request", "requestingAgencyMessage"]
    at: datetime
    action: Action | None = None  # for a requestingAgencyMessage

    def __post_init__(self) -> None:
        _aware(self.at, "at")

    @property
    def key(self) -> str:
        if self.kind == "request":
            return "request_undelivered"
        if self.action in (Action.Cancel, Action.Renew):
            return f"{self.action.value.lower()}_undelivered"
        return "message_undelivered"


PartnerEvent = SupplierMessage
SystemEvent = Tick | RequestConfirmed | DeliveryFailed
Event = StaffEvent | SupplierMessage | Tick | RequestConfirmed | DeliveryFailed
