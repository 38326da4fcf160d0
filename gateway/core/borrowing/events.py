"""Inputs of the borrowing state machine: staff actions, partner messages, system events.

Every event carries its time (timezone-aware; the core has no clock) and maps to one event
key of the transition table (`table.py`). Staff events have a fixed `key` and their API name
(`api`); the table derives a partner message's key from its reason, status and answer. The
events both sides share (notes, general messages, ticks) are in `core.common`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal, Mapping

from gateway.messages.codes import Action, ReasonForMessage, Status, YesNo

from ..common import AddNote, MarkMessagesRead, SendMessage, StaffEvent, Tick, api_names, aware
from .state import Attention, RequestDetails
from .table import delivery_key, partner_key


# --- staff (and patron) actions ---------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Create(StaffEvent):
    """Save the form. With partners the request goes to the first at once."""

    key: ClassVar[str] = "create"
    details: RequestDetails
    partners: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Edit(StaffEvent):
    key: ClassVar[str] = "edit"
    api: ClassVar[str] = "edit"
    changes: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class Receive(StaffEvent):
    key: ClassVar[str] = "receive"
    api: ClassVar[str] = "receive"
    note: str | None = None
    items: tuple[str, ...] = ()  # barcodes of the received items


@dataclass(frozen=True, kw_only=True)
class LoanToPatron(StaffEvent):
    key: ClassVar[str] = "loan_to_patron"
    api: ClassVar[str] = "loan-to-patron"


@dataclass(frozen=True, kw_only=True)
class ReturnByPatron(StaffEvent):
    key: ClassVar[str] = "return_by_patron"
    api: ClassVar[str] = "return-by-patron"


@dataclass(frozen=True, kw_only=True)
class ReturnToPartner(StaffEvent):
    key: ClassVar[str] = "return_to_partner"
    api: ClassVar[str] = "return"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class Renew(StaffEvent):
    key: ClassVar[str] = "renew"
    api: ClassVar[str] = "renew"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class AcceptConditions(StaffEvent):
    key: ClassVar[str] = "accept_conditions"
    api: ClassVar[str] = "accept-condition"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class RejectConditions(StaffEvent):
    key: ClassVar[str] = "reject_conditions"
    api: ClassVar[str] = "reject-condition"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class RetryRequest(StaffEvent):
    """Answer RetryPossible: send the request again (type Retry), optionally changed."""

    key: ClassVar[str] = "retry"
    api: ClassVar[str] = "retry"
    changes: Mapping[str, Any] = field(default_factory=dict)
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class SkipPartner(StaffEvent):
    """Answer RetryPossible: give up on this partner and try the next."""

    key: ClassVar[str] = "skip"
    api: ClassVar[str] = "skip"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class CancelRequest(StaffEvent):
    key: ClassVar[str] = "cancel"
    api: ClassVar[str] = "cancel"
    reason: str | None = None
    note: str | None = None
    notify_patron: bool = False
    by_patron: bool = False


@dataclass(frozen=True, kw_only=True)
class SendStatusRequest(StaffEvent):
    key: ClassVar[str] = "status_request"
    api: ClassVar[str] = "status-request"


@dataclass(frozen=True, kw_only=True)
class Close(StaffEvent):
    """Complete a request whose copy was received (nothing goes back to the lender)."""

    key: ClassVar[str] = "close"
    api: ClassVar[str] = "close"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class MoveUp(StaffEvent):
    key: ClassVar[str] = "move_partner"
    api: ClassVar[str] = "move-partner"
    partner: str


@dataclass(frozen=True, kw_only=True)
class MoveDown(StaffEvent):
    key: ClassVar[str] = "move_partner"
    api: ClassVar[str] = "move-partner"
    partner: str


@dataclass(frozen=True, kw_only=True)
class MoveSelected(StaffEvent):
    key: ClassVar[str] = "move_partner"
    api: ClassVar[str] = "move-partner"
    partners: tuple[str, ...]
    position: int  # 0-based index the first selected entry moves to


@dataclass(frozen=True, kw_only=True)
class AddPartner(StaffEvent):
    key: ClassVar[str] = "add_partner"
    api: ClassVar[str] = "add-partner"
    partner: str
    position: int | None = None  # None: at the end


@dataclass(frozen=True, kw_only=True)
class RemovePartner(StaffEvent):
    key: ClassVar[str] = "remove_partner"
    api: ClassVar[str] = "remove-partner"
    partner: str


@dataclass(frozen=True, kw_only=True)
class CancelPartner(StaffEvent):
    """Cancel the active partner (sends Cancel) and move on to the next."""

    key: ClassVar[str] = "cancel_partner"
    api: ClassVar[str] = "cancel-partner"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class Locate(StaffEvent):
    """Manual locate and resend: add the default rota's missing partners, then send."""

    key: ClassVar[str] = "locate"
    api: ClassVar[str] = "locate"
    default_rota: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class TreatAsCancelled(StaffEvent):
    """The partner never answered our Cancel: take the request as cancelled."""

    key: ClassVar[str] = "treat_as_cancelled"
    api: ClassVar[str] = "treat-as-cancelled"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class ResumeRequest(StaffEvent):
    """The partner never answered our Cancel: carry on as if it had refused it."""

    key: ClassVar[str] = "resume_request"
    api: ClassVar[str] = "resume-request"
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class Acknowledge(StaffEvent):
    """Staff dealt with a flag that no status change clears (send failed, cancel refused)."""

    key: ClassVar[str] = "acknowledge"
    api: ClassVar[str] = "acknowledge"
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
    # ReShare's #ReShareSupplierConditionsAssumedAgreed# marker: the supplier goes ahead with the
    # loan conditions it sent, taking them as agreed unless we reject them (docs/state-machines.md).
    conditions_assumed_agreed: bool = False
    received_at: datetime
    # The header's timestamp: when the partner wrote the message, by its own clock. Orders the
    # partner's messages when they arrive out of order (docs/message-order-and-duplicates.md).
    timestamp: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("received_at", "timestamp", "due_date", "retry_after", "retry_before"):
            aware(getattr(self, name), name)

    @property
    def at(self) -> datetime:
        return self.received_at

    @property
    def is_status_response(self) -> bool:
        return self.reason is ReasonForMessage.StatusRequestResponse

    @property
    def key(self) -> str:
        return partner_key(self.reason, self.status, self.answer, due_date=self.due_date,
                           has_conditions=bool(self.loan_conditions or self.offered_costs),
                           conditions_assumed_agreed=self.conditions_assumed_agreed)


# --- system events -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RequestConfirmed:
    """The partner answered our `request` with a confirmation OK."""

    partner: str
    now: datetime

    def __post_init__(self) -> None:
        aware(self.now, "now")

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
        aware(self.at, "at")

    @property
    def key(self) -> str:
        return delivery_key(self.kind, self.action)


STAFF_EVENTS: tuple[type[StaffEvent], ...] = (
    Edit, SendMessage, AddNote, Receive, LoanToPatron, ReturnByPatron, ReturnToPartner, Renew, AcceptConditions,
    RejectConditions, RetryRequest, SkipPartner, CancelRequest, SendStatusRequest, Close, MoveUp, MoveDown,
    MoveSelected, AddPartner, RemovePartner, CancelPartner, Locate, MarkMessagesRead, TreatAsCancelled,
    ResumeRequest, Acknowledge,
)
"""The staff actions on a request (Create starts one: it is not an action on a request)."""
API_NAMES: dict[str, str] = api_names(*STAFF_EVENTS)
Event = StaffEvent | SupplierMessage | Tick | RequestConfirmed | DeliveryFailed
