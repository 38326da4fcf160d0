"""Borrowing request statuses (docs/state-machines.md).

Codes are the stable key (stored, sent over the staff API); labels follow Alma's vocabulary
and are for people only. The groups below are the ones the transition table is written in;
the order of statuses along the life of a request (`PHASE`) is in the table.
"""

from __future__ import annotations

from enum import StrEnum


class BorrowingStatus(StrEnum):
    CREATED = "CREATED"
    LOCATE_FAILED = "LOCATE_FAILED"
    REQUEST_SENT = "REQUEST_SENT"
    READY_TO_SEND = "READY_TO_SEND"
    EXPECTED_TO_SUPPLY = "EXPECTED_TO_SUPPLY"
    WILL_SUPPLY = "WILL_SUPPLY"
    CONDITIONAL = "CONDITIONAL"
    RETRY_POSSIBLE = "RETRY_POSSIBLE"
    REJECTED_BY_PARTNER = "REJECTED_BY_PARTNER"
    SHIPPED_PHYSICALLY = "SHIPPED_PHYSICALLY"
    SHIPPED_DIGITALLY = "SHIPPED_DIGITALLY"
    RECEIVED_PHYSICALLY = "RECEIVED_PHYSICALLY"
    LOANED_TO_PATRON = "LOANED_TO_PATRON"
    RETURNED_BY_PATRON = "RETURNED_BY_PATRON"
    RENEW_REQUESTED = "RENEW_REQUESTED"
    RENEWED_BY_PARTNER = "RENEWED_BY_PARTNER"
    RENEW_NOT_ACCEPTED = "RENEW_NOT_ACCEPTED"
    OVERDUE = "OVERDUE"
    RECALLED = "RECALLED"
    RETURNED_TO_PARTNER = "RETURNED_TO_PARTNER"
    WAITING_FOR_CANCEL_RESPONSE = "WAITING_FOR_CANCEL_RESPONSE"
    COMPLETED = "COMPLETED"
    CANCELED_BY_STAFF = "CANCELED_BY_STAFF"
    CANCELED_BY_PATRON = "CANCELED_BY_PATRON"
    CANCELED_BY_PARTNER = "CANCELED_BY_PARTNER"
    EXPIRED = "EXPIRED"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def is_final(self) -> bool:
        return self in FINAL


S = BorrowingStatus

_LABELS: dict[BorrowingStatus, str] = {
    S.CREATED: "Created borrowing request",
    S.LOCATE_FAILED: "Locate failed",
    S.REQUEST_SENT: "Request sent to partner",
    S.READY_TO_SEND: "Ready to be sent",
    S.EXPECTED_TO_SUPPLY: "Request accepted",
    S.WILL_SUPPLY: "Will supply",
    S.CONDITIONAL: "Conditional",
    S.RETRY_POSSIBLE: "Retry possible",
    S.REJECTED_BY_PARTNER: "Rejected by partner",
    S.SHIPPED_PHYSICALLY: "Shipped physically",
    S.SHIPPED_DIGITALLY: "Shipped digitally",
    S.RECEIVED_PHYSICALLY: "Physically received by library",
    S.LOANED_TO_PATRON: "Loaned item to patron",
    S.RETURNED_BY_PATRON: "Returned by patron",
    S.RENEW_REQUESTED: "Renew requested",
    S.RENEWED_BY_PARTNER: "Renewed by partner",
    S.RENEW_NOT_ACCEPTED: "Renew request not accepted",
    S.OVERDUE: "Overdue request",
    S.RECALLED: "Recalled by partner",
    S.RETURNED_TO_PARTNER: "Returned item to partner",
    S.WAITING_FOR_CANCEL_RESPONSE: "Waiting for cancel response",
    S.COMPLETED: "Request completed",
    S.CANCELED_BY_STAFF: "Canceled by staff",
    S.CANCELED_BY_PATRON: "Canceled by patron",
    S.CANCELED_BY_PARTNER: "Canceled by partner",
    S.EXPIRED: "Expired",
}

# Groups the transition table is written in.
BETWEEN_PARTNERS = frozenset({S.CREATED, S.READY_TO_SEND, S.REJECTED_BY_PARTNER})
"""A request may be on its way to a partner that has not confirmed it yet."""
AWAITING_ANSWER = BETWEEN_PARTNERS | {S.REQUEST_SENT}
ANSWERED = frozenset({S.EXPECTED_TO_SUPPLY, S.WILL_SUPPLY, S.CONDITIONAL, S.RETRY_POSSIBLE})
BEFORE_SHIPPING = AWAITING_ANSWER | ANSWERED | {S.LOCATE_FAILED}
SHIPPED = frozenset({S.SHIPPED_PHYSICALLY, S.SHIPPED_DIGITALLY})
ON_LOAN = frozenset({
    S.RECEIVED_PHYSICALLY, S.LOANED_TO_PATRON, S.RETURNED_BY_PATRON, S.RENEW_REQUESTED,
    S.RENEWED_BY_PARTNER, S.RENEW_NOT_ACCEPTED, S.OVERDUE, S.RECALLED,
})
FINAL = frozenset({S.COMPLETED, S.CANCELED_BY_STAFF, S.CANCELED_BY_PATRON, S.CANCELED_BY_PARTNER, S.EXPIRED})
OPEN = frozenset(S) - FINAL
ALL = frozenset(S)
