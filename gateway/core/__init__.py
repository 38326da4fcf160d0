"""Pure core: the two state machines (`borrowing/`, `lending/`) on one kernel (`machine.py`),
rota logic, status tables. No I/O, no DB, no clock. The borrowing side's names are exported here,
the lending side's from `gateway.core.lending`."""

from .borrowing.decide import decide, next_deadline
from .errors import BorrowingError, IllegalTransition, InvalidInput
from .borrowing.events import (
    AcceptConditions, Acknowledge, AddNote, AddPartner, CancelPartner, CancelRequest, Close, Create,
    DeliveryFailed, Edit, LoanToPatron, Locate, MarkMessagesRead, MoveDown, MoveSelected, MoveUp, Receive,
    RejectConditions, RemovePartner, Renew, RequestConfirmed, ResumeRequest, RetryRequest, ReturnByPatron,
    ReturnToPartner, SendMessage, SendStatusRequest, SkipPartner, StaffEvent, SupplierMessage, Tick, TreatAsCancelled,
)
from .borrowing.events import API_NAMES as BORROWING_API_NAMES
from .borrowing.policy import DEFAULT_POLICY, BorrowingPolicy
from .rota import EntryState, RotaEntry
from .borrowing.state import (
    Attention, BorrowingState, CancelInfo, Decision, ItemLocation, Outgoing, RequestDetails,
)
from .common import GeneralMessage, HistoryEntry, Note
from .borrowing.statuses import BorrowingStatus
from .templates import RotaTemplate, choose_rota
from .borrowing.table import TABLE, Outcome, allowed_actions, render_markdown

__all__ = [
    "decide", "next_deadline", "allowed_actions", "render_markdown", "TABLE", "Outcome", "choose_rota", "RotaTemplate",
    "BorrowingError", "IllegalTransition", "InvalidInput", "BorrowingPolicy", "DEFAULT_POLICY",
    "BorrowingStatus", "BorrowingState", "RequestDetails", "CancelInfo", "Attention", "ItemLocation",
    "Decision", "Outgoing", "HistoryEntry", "GeneralMessage", "Note", "RotaEntry", "EntryState",
    "StaffEvent", "Create", "Edit", "SendMessage", "AddNote", "Receive", "LoanToPatron", "ReturnByPatron",
    "ReturnToPartner", "Renew", "AcceptConditions", "RejectConditions", "RetryRequest", "SkipPartner",
    "CancelRequest", "SendStatusRequest", "Close", "MoveUp", "MoveDown", "MoveSelected", "AddPartner",
    "RemovePartner", "CancelPartner", "Locate", "Acknowledge", "SupplierMessage", "Tick", "RequestConfirmed",
    "DeliveryFailed", "TreatAsCancelled", "ResumeRequest", "MarkMessagesRead", "BORROWING_API_NAMES",
]
