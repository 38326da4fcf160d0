"""Lending request statuses: we are the supplying agency, the mirror of the borrowing side.

Codes are the stable key (stored, sent over the staff API); labels are for people. `iso` is the
ISO 18626 status the borrower is told while the request is in that status; two statuses have
none of their own: CONDITIONAL (the borrower saw WillSupply or ExpectToSupply *with* conditions)
and RETURN_SHIPPED (the borrower sent the item back; until we check it in the loan is still
Loaned, Overdue or Recalled). The state keeps the ISO status actually reported (`iso_status`).
"""

from __future__ import annotations

from enum import StrEnum

from gateway.messages.codes import Status


class LendingStatus(StrEnum):
    NEW = "NEW"
    EXPECT_TO_SUPPLY = "EXPECT_TO_SUPPLY"
    WILL_SUPPLY = "WILL_SUPPLY"
    CONDITIONAL = "CONDITIONAL"
    RETRY_POSSIBLE = "RETRY_POSSIBLE"
    UNFILLED = "UNFILLED"
    LOANED = "LOANED"
    OVERDUE = "OVERDUE"
    RECALLED = "RECALLED"
    COPY_COMPLETED = "COPY_COMPLETED"
    RETURN_SHIPPED = "RETURN_SHIPPED"
    LOAN_COMPLETED = "LOAN_COMPLETED"
    COMPLETED_WITHOUT_RETURN = "COMPLETED_WITHOUT_RETURN"
    CANCELLED = "CANCELLED"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def iso(self) -> Status | None:
        """The ISO status this status stands for; None where it depends on the request."""
        return _ISO.get(self)

    @property
    def is_final(self) -> bool:
        return self in FINAL


L = LendingStatus

_LABELS: dict[LendingStatus, str] = {
    L.NEW: "New request (request received)",
    L.EXPECT_TO_SUPPLY: "Expect to supply",
    L.WILL_SUPPLY: "Will supply",
    L.CONDITIONAL: "Conditional (waiting for the borrower to accept or reject)",
    L.RETRY_POSSIBLE: "Retry possible (waiting for the borrower's retry)",
    L.UNFILLED: "Unfilled",
    L.LOANED: "Loaned (shipped physically)",
    L.OVERDUE: "Overdue",
    L.RECALLED: "Recalled",
    L.COPY_COMPLETED: "Copy completed (shipped digitally)",
    L.RETURN_SHIPPED: "Return shipped by the borrower (awaiting check-in)",
    L.LOAN_COMPLETED: "Loan completed (checked in)",
    L.COMPLETED_WITHOUT_RETURN: "Completed without return",
    L.CANCELLED: "Cancelled",
}

_ISO: dict[LendingStatus, Status] = {
    L.NEW: Status.RequestReceived,
    L.EXPECT_TO_SUPPLY: Status.ExpectToSupply,
    L.WILL_SUPPLY: Status.WillSupply,
    L.RETRY_POSSIBLE: Status.RetryPossible,
    L.UNFILLED: Status.Unfilled,
    L.LOANED: Status.Loaned,
    L.OVERDUE: Status.Overdue,
    L.RECALLED: Status.Recalled,
    L.COPY_COMPLETED: Status.CopyCompleted,
    L.LOAN_COMPLETED: Status.LoanCompleted,
    L.COMPLETED_WITHOUT_RETURN: Status.CompletedWithoutReturn,
    L.CANCELLED: Status.Cancelled,
}

# Groups the transition table is written in.
UNANSWERED = frozenset({L.NEW})
"""Staff have not answered yet: the only status the expiry timer acts on."""
PROMISED = frozenset({L.NEW, L.EXPECT_TO_SUPPLY, L.WILL_SUPPLY})
"""We may still ship, and a Cancel is a question for staff."""
WAITING_FOR_BORROWER = frozenset({L.CONDITIONAL, L.RETRY_POSSIBLE})
"""We answered and wait for the borrower (accept/reject the conditions; retry)."""
BEFORE_SHIPPING = PROMISED | WAITING_FOR_BORROWER
ON_LOAN = frozenset({L.LOANED, L.OVERDUE, L.RECALLED})
"""The item is with the borrower."""
OUT = ON_LOAN | {L.RETURN_SHIPPED}
"""The item has left our shelves and is not checked in yet."""
FINAL = frozenset({L.UNFILLED, L.COPY_COMPLETED, L.LOAN_COMPLETED, L.COMPLETED_WITHOUT_RETURN, L.CANCELLED})
OPEN = frozenset(L) - FINAL
ALL = frozenset(L)
