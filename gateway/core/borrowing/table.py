"""The borrowing transition table: everything that decides *which* status follows lives here.

Rules of this file (after h11's `_state.py`):
- The table is plain data: rows of (from statuses, event key, target). A target is a status or
  an Outcome, a named rule whose result depends on the rota or the policy (e.g. "next partner").
- An event key missing for a status is illegal there: `check` raises IllegalTransition naming
  the event, the status and what is allowed. Two exceptions, both recorded without an error:
  a partner status that would move the request back to an earlier phase (out of order), and
  system events (timers, outbox results), which can always arrive late.
- Guards are the few conditions that are not the status (is there an active partner? where is
  the item?). `allowed_actions` and the README table are derived from TABLE and GUARDS only.
The handlers (`_staff`, `_incoming`, `_system`) say *what else* happens: messages, rota, history.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Callable, Iterable

from ..errors import IllegalTransition
from ..rota import first_pending
from .state import CLEARED_BY_ACTION, STATUS_BOUND, Attention, BorrowingState, ItemLocation
from .statuses import (
    ALL, ANSWERED, AWAITING_ANSWER, BEFORE_SHIPPING, BETWEEN_PARTNERS, ON_LOAN, OPEN, SHIPPED,
)
from .statuses import BorrowingStatus as S


class Outcome(StrEnum):
    SAME = "same"
    FIRST_PARTNER = "first_partner"
    NEXT_PARTNER = "next_partner"
    STAFF_LEFT_PARTNER = "staff_left_partner"
    PARTNER_CANCELLED = "partner_cancelled"
    UNDELIVERED = "undelivered"
    LOCATE = "locate"
    CANCEL = "cancel"
    CANCELED_BY_REQUESTER = "canceled_by_requester"
    RESTORE = "restore"
    DEFER = "defer"


OUTCOME_TEXT: dict[Outcome, str] = {
    Outcome.SAME: "no status change",
    Outcome.FIRST_PARTNER: "CREATED with the request sent to the first partner; LOCATE_FAILED without partners",
    Outcome.NEXT_PARTNER: "REJECTED_BY_PARTNER and the next pending partner gets the request at once; "
    "after the last: EXPIRED, or REJECTED_BY_PARTNER for review (policy end_of_rota)",
    Outcome.STAFF_LEFT_PARTNER: "REJECTED_BY_PARTNER and the next pending partner gets the request at once; "
    "after the last: REJECTED_BY_PARTNER for staff to add a partner or locate, needs attention "
    "(staff chose to leave the partner, so end_of_rota does not apply)",
    Outcome.PARTNER_CANCELLED: "CANCELED_BY_PARTNER, or the next partner (policy on_partner_cancel)",
    Outcome.UNDELIVERED: "next partner (policy on_send_failure); with nobody left, or on hold: "
    "READY_TO_SEND, needs attention",
    Outcome.LOCATE: "READY_TO_SEND with the request to the active or first pending partner; "
    "LOCATE_FAILED if there is none",
    Outcome.CANCEL: "WAITING_FOR_CANCEL_RESPONSE (Cancel sent to the active partner); "
    "CANCELED_BY_STAFF / CANCELED_BY_PATRON at once if no partner is active",
    Outcome.CANCELED_BY_REQUESTER: "CANCELED_BY_STAFF or CANCELED_BY_PATRON, whoever asked",
    Outcome.RESTORE: "back to the status before the cancel or renew",
    Outcome.DEFER: "status unchanged; remembered as the status to restore if the cancel is refused",
}

Target = S | Outcome
Row = tuple[Iterable[S], str, Target]

SAME, NEXT, LEFT = Outcome.SAME, Outcome.NEXT_PARTNER, Outcome.STAFF_LEFT_PARTNER
WAITING = S.WAITING_FOR_CANCEL_RESPONSE
HELD = frozenset({S.RECEIVED_PHYSICALLY, S.RETURNED_BY_PATRON, S.RENEWED_BY_PARTNER, S.RENEW_NOT_ACCEPTED, S.OVERDUE})
BEFORE_RETURN = AWAITING_ANSWER | ANSWERED | SHIPPED | ON_LOAN | {S.RETURNED_TO_PARTNER}

STAFF_ROWS: tuple[Row, ...] = (
    (ALL, "add_note", SAME),
    (ALL, "acknowledge", SAME),
    (ALL, "mark_messages_read", SAME),
    (BEFORE_SHIPPING, "edit", SAME),
    (OPEN - {S.LOCATE_FAILED}, "send_message", SAME),
    (OPEN - {S.LOCATE_FAILED}, "status_request", SAME),
    (BEFORE_SHIPPING, "move_partner", SAME),
    (BEFORE_SHIPPING, "add_partner", SAME),
    (BEFORE_SHIPPING, "remove_partner", SAME),
    (BEFORE_SHIPPING - {S.LOCATE_FAILED}, "cancel_partner", LEFT),
    ({S.LOCATE_FAILED, S.READY_TO_SEND, S.REJECTED_BY_PARTNER}, "locate", Outcome.LOCATE),
    (BEFORE_SHIPPING, "cancel", Outcome.CANCEL),
    ({S.CONDITIONAL}, "accept_conditions", S.WILL_SUPPLY),
    ({S.CONDITIONAL}, "reject_conditions", LEFT),
    # The partner never answered our Cancel (its response deadline passed): staff settle it.
    ({WAITING}, "treat_as_cancelled", Outcome.CANCELED_BY_REQUESTER),
    ({WAITING}, "resume_request", Outcome.RESTORE),
    ({S.RETRY_POSSIBLE}, "retry", S.READY_TO_SEND),
    ({S.RETRY_POSSIBLE}, "skip", LEFT),
    (SHIPPED, "receive", S.RECEIVED_PHYSICALLY),
    (HELD, "loan_to_patron", S.LOANED_TO_PATRON),
    ({S.RENEW_REQUESTED}, "loan_to_patron", SAME),  # the renew answer decides the status
    (HELD - {S.RECEIVED_PHYSICALLY, S.RETURNED_BY_PATRON} | {S.LOANED_TO_PATRON, S.RECALLED},
     "return_by_patron", S.RETURNED_BY_PATRON),
    ({S.RENEW_REQUESTED}, "return_by_patron", SAME),
    (ON_LOAN - {S.LOANED_TO_PATRON}, "return_to_partner", S.RETURNED_TO_PARTNER),
    (HELD | {S.LOANED_TO_PATRON}, "renew", S.RENEW_REQUESTED),
    ({S.SHIPPED_DIGITALLY, S.RECEIVED_PHYSICALLY}, "close", S.COMPLETED),
)

# Keys of a partner's supplyingAgencyMessage (see SupplierMessage.key).
_DEFERRED_WHILE_CANCELLING = (
    "RequestReceived", "ExpectToSupply", "WillSupply", "Conditional", "RetryPossible", "Loaned",
    "CopyCompleted", "Overdue", "Recalled", "HoldReturn", "ReleaseHoldReturn", "LoanCompleted",
    "CompletedWithoutReturn",
)
PARTNER_ROWS: tuple[Row, ...] = (
    (ALL, "Notification", SAME),
    # A Notification that also takes our answer to the conditions as given: a conditional offer
    # becomes a plain WillSupply; anywhere else it is just a Notification.
    ({S.CONDITIONAL}, "ConditionsAssumedAgreed", S.WILL_SUPPLY),
    (ALL - {S.CONDITIONAL}, "ConditionsAssumedAgreed", SAME),
    (AWAITING_ANSWER, "RequestReceived", S.EXPECTED_TO_SUPPLY),
    (AWAITING_ANSWER, "ExpectToSupply", S.EXPECTED_TO_SUPPLY),
    (AWAITING_ANSWER | {S.EXPECTED_TO_SUPPLY, S.CONDITIONAL}, "WillSupply", S.WILL_SUPPLY),
    (AWAITING_ANSWER | {S.EXPECTED_TO_SUPPLY, S.WILL_SUPPLY, S.CONDITIONAL}, "Conditional", S.CONDITIONAL),
    (AWAITING_ANSWER | {S.EXPECTED_TO_SUPPLY, S.WILL_SUPPLY}, "RetryPossible", S.RETRY_POSSIBLE),
    (AWAITING_ANSWER | ANSWERED, "Unfilled", NEXT),
    (AWAITING_ANSWER | ANSWERED, "Loaned", S.SHIPPED_PHYSICALLY),
    (AWAITING_ANSWER | ANSWERED, "CopyCompleted", S.SHIPPED_DIGITALLY),
    (AWAITING_ANSWER | ANSWERED, "Cancelled", Outcome.PARTNER_CANCELLED),
    ({S.SHIPPED_PHYSICALLY} | ON_LOAN - {S.OVERDUE, S.RENEW_REQUESTED}, "Overdue", S.OVERDUE),
    ({S.RENEW_REQUESTED}, "Overdue", SAME),  # the renew answer decides the status
    ({S.SHIPPED_PHYSICALLY} | ON_LOAN - {S.RECALLED}, "Recalled", S.RECALLED),
    ({S.SHIPPED_PHYSICALLY} | ON_LOAN, "HoldReturn", SAME),
    ({S.SHIPPED_PHYSICALLY} | ON_LOAN, "ReleaseHoldReturn", SAME),
    ({S.RENEW_REQUESTED}, "RenewResponse:Y", S.RENEWED_BY_PARTNER),
    ({S.RENEW_REQUESTED}, "RenewResponse:N", S.RENEW_NOT_ACCEPTED),
    (BEFORE_RETURN, "LoanCompleted", S.COMPLETED),
    (BEFORE_RETURN, "CompletedWithoutReturn", S.COMPLETED),
    ({WAITING}, "CancelResponse:Y", Outcome.CANCELED_BY_REQUESTER),
    ({WAITING}, "CancelResponse:N", Outcome.RESTORE),
    ({WAITING}, "Unfilled", Outcome.CANCELED_BY_REQUESTER),
    ({WAITING}, "Cancelled", Outcome.CANCELED_BY_REQUESTER),
    *(({WAITING}, key, Outcome.DEFER) for key in _DEFERRED_WHILE_CANCELLING),
)

SYSTEM_ROWS: tuple[Row, ...] = (
    (BETWEEN_PARTNERS, "request_confirmed", S.REQUEST_SENT),
    ({WAITING}, "request_confirmed", Outcome.DEFER),
    (BETWEEN_PARTNERS, "request_undelivered", Outcome.UNDELIVERED),
    ({WAITING}, "request_undelivered", Outcome.CANCELED_BY_REQUESTER),  # it never arrived
    ({WAITING}, "cancel_undelivered", Outcome.RESTORE),
    ({S.RENEW_REQUESTED}, "renew_undelivered", Outcome.RESTORE),
    (ALL, "message_undelivered", SAME),
    ({S.REQUEST_SENT}, "no_answer", SAME),  # sends StatusRequest, grace starts
    ({S.REQUEST_SENT}, "no_answer_after_grace", NEXT),  # sends Cancel
    ({WAITING}, "cancel_overdue", SAME),  # flags the request: staff settle the cancel
)

# A request is born by "create" (there is no status before it).
INITIAL: tuple[str, Target] = ("create", Outcome.FIRST_PARTNER)


def build_table(statuses, *groups):
    """status -> event key -> target, from rows of (statuses, key, target); a pair given twice
    is a mistake in the rows. Shared with the lending table."""
    table = {s: {} for s in statuses}
    for rows in groups:
        for row_statuses, key, target in rows:
            for status in row_statuses:
                if key in table[status]:
                    raise AssertionError(f"duplicate transition ({status}, {key})")
                table[status][key] = target
    return table


TABLE: dict[S, dict[str, Target]] = build_table(S, STAFF_ROWS, PARTNER_ROWS, SYSTEM_ROWS)


def row_keys(rows) -> tuple[str, ...]:
    """The event keys of some rows, in first-seen order."""
    return tuple(dict.fromkeys(key for _, key, _ in rows))


STAFF_KEYS = ("create", *row_keys(STAFF_ROWS))
PARTNER_KEYS = row_keys(PARTNER_ROWS)
SYSTEM_KEYS = row_keys(SYSTEM_ROWS)

# Where the partner keys would take a request, ignoring the current status: used to tell an
# out-of-order message (earlier phase: recorded) from an illegal one (later phase: refused).
# Keys without an entry (responses nobody asked for, Notification) are always just recorded.
NOMINAL: dict[str, S] = {
    "RequestReceived": S.EXPECTED_TO_SUPPLY, "ExpectToSupply": S.EXPECTED_TO_SUPPLY,
    "WillSupply": S.WILL_SUPPLY, "Conditional": S.CONDITIONAL, "RetryPossible": S.RETRY_POSSIBLE,
    "Unfilled": S.REJECTED_BY_PARTNER, "Loaned": S.SHIPPED_PHYSICALLY,
    "CopyCompleted": S.SHIPPED_DIGITALLY, "Overdue": S.OVERDUE, "Recalled": S.RECALLED,
    "HoldReturn": S.RECEIVED_PHYSICALLY, "ReleaseHoldReturn": S.RECEIVED_PHYSICALLY,
    "LoanCompleted": S.COMPLETED, "CompletedWithoutReturn": S.COMPLETED,
    "Cancelled": S.CANCELED_BY_PARTNER,
}


# --- guards: conditions beyond the status ----------------------------------------------------


def _has_current(state: BorrowingState) -> bool:
    return state.current is not None


def _has_active(state: BorrowingState) -> bool:
    return state.active is not None


def _has_pending(state: BorrowingState) -> bool:
    return first_pending(state.rota) is not None


def _can_reorder(state: BorrowingState) -> bool:
    return len(state.rota) > 1


def _nothing_in_flight(state: BorrowingState) -> bool:
    active = state.active
    return active is None or active.undelivered


def _at_library(state: BorrowingState) -> bool:
    return state.location is ItemLocation.LIBRARY


def _with_patron(state: BorrowingState) -> bool:
    return state.location is ItemLocation.PATRON


def _loan_at_library(state: BorrowingState) -> bool:
    return state.supply != "copy" and _at_library(state)


def _is_loan(state: BorrowingState) -> bool:
    return state.supply != "copy"


def _is_copy(state: BorrowingState) -> bool:
    return state.supply == "copy"


def _has_plain_flag(state: BorrowingState) -> bool:
    return bool(state.flags - STATUS_BOUND - CLEARED_BY_ACTION)


def _has_unread(state: BorrowingState) -> bool:
    return Attention.MESSAGE_UNREAD in state.flags


def _cancel_overdue(state: BorrowingState) -> bool:
    return Attention.CANCEL_OVERDUE in state.flags


GUARDS: dict[str, tuple[Callable[[BorrowingState], bool], str]] = {
    "send_message": (_has_current, "there is no partner to write to"),
    "status_request": (_has_current, "there is no partner to ask"),
    "cancel_partner": (_has_active, "no partner is active"),
    "remove_partner": (_has_pending, "no partner is pending"),
    "move_partner": (_can_reorder, "the rota has fewer than two partners"),
    "locate": (_nothing_in_flight, "a request to the active partner is under way"),
    "loan_to_patron": (_at_library, "the item is not at the library"),
    "return_by_patron": (_with_patron, "the item is not with the patron"),
    "return_to_partner": (_loan_at_library, "only a loaned item at the library can be returned"),
    "renew": (_is_loan, "only a loan can be renewed"),
    "close": (_is_copy, "only a copy can be closed; a loan is completed by the lender"),
    "acknowledge": (_has_plain_flag, "no flag to acknowledge"),
    "mark_messages_read": (_has_unread, "no unread general message"),
    "treat_as_cancelled": (_cancel_overdue, "the partner's answer to the Cancel is not overdue yet"),
    "resume_request": (_cancel_overdue, "the partner's answer to the Cancel is not overdue yet"),
}


# --- queries -------------------------------------------------------------------------------


def target(status: S, key: str) -> Target | None:
    return TABLE[status].get(key)


def allowed_actions(state: BorrowingState) -> tuple[str, ...]:
    """Staff actions legal now, in table order (for the staff UI and the API)."""
    row = TABLE[state.status]
    return tuple(k for k in STAFF_KEYS if k in row and _guard_ok(state, k))


def partner_keys(status: S) -> tuple[str, ...]:
    row = TABLE[status]
    return tuple(k for k in PARTNER_KEYS if k in row)


def check_staff(state: BorrowingState, key: str) -> Target:
    found = target(state.status, key)
    if found is None:
        raise IllegalTransition(key, state.status.value, allowed_actions(state))
    guard = GUARDS.get(key)
    if guard and not guard[0](state):
        raise IllegalTransition(key, state.status.value, allowed_actions(state), guard[1])
    return found


def _guard_ok(state: BorrowingState, key: str) -> bool:
    guard = GUARDS.get(key)
    return guard is None or guard[0](state)


def is_out_of_order(status: S, key: str) -> bool:
    """A partner key the table lacks for `status`: recorded (True) or refused (False)?"""
    nominal = NOMINAL.get(key)
    return nominal is None or nominal.phase <= status.phase


# --- documentation -------------------------------------------------------------------------


def render_markdown() -> str:
    """The README's status table, generated from TABLE, GUARDS and OUTCOME_TEXT."""
    lines = [
        "| Status | Label | Staff actions | Partner messages | System events |",
        "|---|---|---|---|---|",
        f"| (new) | | `{INITIAL[0]}` → {_show(INITIAL[1])} | | |",
    ]
    for status in S:
        row = TABLE[status]
        cells = [
            "<br>".join(_cell(key, row[key]) for key in keys if key in row)
            for keys in (STAFF_KEYS, PARTNER_KEYS, SYSTEM_KEYS)
        ]
        lines.append(f"| {status.value} | {status.label} | " + " | ".join(cells) + " |")
    lines += ["", "| Outcome | Meaning |", "|---|---|"]
    lines += [f"| {o.value} | {text} |" for o, text in OUTCOME_TEXT.items()]
    lines += ["", "| Action | Also refused when |", "|---|---|"]
    lines += [f"| `{key}` | {why} |" for key, (_, why) in GUARDS.items()]
    return "\n".join(lines) + "\n"


def _cell(key: str, found: Target) -> str:
    return f"`{key}`" if found is Outcome.SAME else f"`{key}` → {_show(found)}"


def _show(found: Target) -> str:
    return found.value if isinstance(found, S) else f"*{found.value}*"

