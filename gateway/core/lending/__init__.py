"""Pure core of the lending side (we are the supplying agency): statuses, transition table,
state machine, expiry calendar. No I/O, no DB, no clock. Names are prefixed where the borrowing
side has the same idea, so code can use both side by side."""

from ..errors import IllegalTransition, InvalidInput
from .events import (
    AddNote, AnswerCancel, AnswerRenew, CheckIn, ClearFlag, CompleteCopy, CompleteWithoutReturn, ExpectToSupply,
    IncomingRequest, LendingEvent, MarkMessagesRead, MarkOverdue, MarkUnfilled, MessageUndelivered, OfferConditions,
    OfferRetry, Recall, RequesterMessage, SendMessage, Ship, Tick, WillSupply, conditions_answer,
)
from .events import API_NAMES as LENDING_API_NAMES
from .decide import decide_lending, next_lending_deadline
from .policy import DEFAULT_LENDING_POLICY, LendingPolicy, expires_at
from .state import (
    Costs, LendingAttention, LendingDecision, LendingDetails, LendingHistoryEntry, LendingState,
    OutgoingSupplierMessage, Pending,
)
from .statuses import LendingStatus
from .table import (
    LENDING_TABLE, WHILE_PENDING, LendingOutcome, allowed_lending_actions, render_lending_markdown,
)

__all__ = [
    "decide_lending", "next_lending_deadline", "expires_at", "allowed_lending_actions", "render_lending_markdown",
    "LENDING_TABLE", "WHILE_PENDING", "LendingOutcome", "LendingStatus", "LendingState", "LendingDetails",
    "LendingDecision", "LendingHistoryEntry", "OutgoingSupplierMessage", "LendingAttention", "Pending", "Costs",
    "LendingPolicy", "DEFAULT_LENDING_POLICY", "IllegalTransition", "InvalidInput",
    "LendingEvent", "RequesterMessage", "IncomingRequest", "MessageUndelivered", "Tick", "AddNote", "SendMessage",
    "MarkMessagesRead",
    "ExpectToSupply", "WillSupply", "OfferConditions", "Ship", "CompleteCopy", "MarkUnfilled", "OfferRetry",
    "AnswerCancel", "AnswerRenew", "MarkOverdue", "Recall", "CheckIn", "CompleteWithoutReturn", "ClearFlag",
    "conditions_answer", "LENDING_API_NAMES",
]
