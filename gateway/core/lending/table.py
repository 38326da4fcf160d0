"""The lending transition table: everything that decides *which* status follows lives here.

Rules of this file (after h11's `_state.py`, like the borrowing table):
- The table is plain data: rows of (from statuses, event key, target). A target is a status or
  a LendingOutcome, a named rule whose result the handlers carry out (answer at once, wait for
  staff, flag...).
- An event key missing for a status is illegal there: `check_*` raises IllegalTransition naming
  the event, the status and what is allowed. Two exceptions, recorded without an error: any
  borrower message in a final status (it crossed our last message on the wire), and system
  events (timers, outbox results), which can always arrive late.
- Guards are the few conditions that are not the status (is a cancel pending? was a copy
  requested?). While the borrower's cancel or renew waits for staff (`Pending`), only the keys
  of WHILE_PENDING are open to staff. `allowed_lending_actions` and the README table are derived
  from TABLE, GUARDS and WHILE_PENDING only.
The handlers (`machine.py`) say *what else* happens: outgoing messages, history, flags.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Callable, Iterable

from gateway.messages.codes import ServiceType

from ..errors import IllegalTransition
from ..borrowing.table import build_table, row_keys
from .state import CLEARED_BY_ACTION, STATUS_BOUND, LendingAttention, LendingState, Pending
from .statuses import (
    ALL, BEFORE_SHIPPING, FINAL, ON_LOAN, OPEN, OUT, PROMISED, UNANSWERED, WAITING_FOR_BORROWER,
)
from .statuses import LendingStatus as L


class LendingOutcome(StrEnum):
    SAME = "same"
    ANSWER_STATUS = "answer_status"
    CANCEL_REQUESTED = "cancel_requested"
    ACCEPT_CANCEL = "accept_cancel"
    REFUSE_CANCEL = "refuse_cancel"
    RENEW_REQUESTED = "renew_requested"
    FLAG = "flag"
    EXPIRE = "expire"


OUTCOME_TEXT: dict[LendingOutcome, str] = {
    LendingOutcome.SAME: "no status change",
    LendingOutcome.ANSWER_STATUS: "no status change; StatusRequestResponse with the current ISO status sent at once",
    LendingOutcome.CANCEL_REQUESTED: "status unchanged; the cancel waits for staff (`answer_cancel:Y` / `:N`), "
    "needs attention",
    LendingOutcome.ACCEPT_CANCEL: "CANCELLED, CancelResponse Cancelled Y sent at once (we were waiting for the "
    "borrower: a Cancel is its answer, e.g. rejected conditions)",
    LendingOutcome.REFUSE_CANCEL: "status unchanged; CancelResponse N with the current status sent at once "
    "(the item has left)",
    LendingOutcome.RENEW_REQUESTED: "status unchanged; the renewal waits for staff (`answer_renew:Y` / `:N`), "
    "needs attention",
    LendingOutcome.FLAG: "status unchanged; needs attention",
    LendingOutcome.EXPIRE: "UNFILLED with Unfilled (policy reasonUnfilled, note \"expired\"); CANCELLED with "
    "CancelResponse Y instead if the borrower's cancel was waiting",
}

Target = L | LendingOutcome
Row = tuple[Iterable[L], str, Target]

SAME = LendingOutcome.SAME

STAFF_ROWS: tuple[Row, ...] = (
    (ALL, "add_note", SAME),
    (ALL, "acknowledge", SAME),
    (ALL, "mark_messages_read", SAME),
    (ALL, "send_message", SAME),
    (UNANSWERED, "expect_to_supply", L.EXPECT_TO_SUPPLY),
    (PROMISED - {L.WILL_SUPPLY} | {L.CONDITIONAL}, "will_supply", L.WILL_SUPPLY),
    (PROMISED | {L.CONDITIONAL}, "conditional", L.CONDITIONAL),
    (PROMISED, "retry_possible", L.RETRY_POSSIBLE),
    (BEFORE_SHIPPING, "unfilled", L.UNFILLED),
    (PROMISED, "ship", L.LOANED),
    (PROMISED, "copy_completed", L.COPY_COMPLETED),
    (PROMISED, "answer_cancel:Y", L.CANCELLED),
    (PROMISED, "answer_cancel:N", SAME),
    (ON_LOAN, "answer_renew:Y", L.LOANED),
    (ON_LOAN, "answer_renew:N", SAME),
    ({L.LOANED, L.RECALLED}, "mark_overdue", L.OVERDUE),
    ({L.LOANED, L.OVERDUE}, "recall", L.RECALLED),
    (OUT, "check_in", L.LOAN_COMPLETED),
    (OUT, "complete_without_return", L.COMPLETED_WITHOUT_RETURN),
)

# Keys of the borrower's messages: requestingAgencyMessage actions (RequesterMessage.key) and
# request types other than New (IncomingRequest.key).
BORROWER_ROWS: tuple[Row, ...] = (
    (ALL, "Notification", SAME),
    ({L.CONDITIONAL}, "Notification:ACCEPT", L.WILL_SUPPLY),
    ({L.CONDITIONAL}, "Notification:REJECT", L.UNFILLED),
    (ALL, "StatusRequest", LendingOutcome.ANSWER_STATUS),
    (PROMISED, "Cancel", LendingOutcome.CANCEL_REQUESTED),
    (WAITING_FOR_BORROWER, "Cancel", LendingOutcome.ACCEPT_CANCEL),
    (OUT | {L.COPY_COMPLETED}, "Cancel", LendingOutcome.REFUSE_CANCEL),
    (ON_LOAN, "Renew", LendingOutcome.RENEW_REQUESTED),
    (ON_LOAN | {L.COPY_COMPLETED}, "Received", SAME),
    (ON_LOAN, "ShippedReturn", L.RETURN_SHIPPED),
    (ON_LOAN, "ShippedForward", SAME),
    (ON_LOAN, "HoldReturn", SAME),
    (OUT, "Lost", LendingOutcome.FLAG),
    ({L.RETRY_POSSIBLE}, "Retry", L.NEW),
    (OPEN, "Reminder", LendingOutcome.FLAG),
)

SYSTEM_ROWS: tuple[Row, ...] = (
    (UNANSWERED, "expire", LendingOutcome.EXPIRE),
    (ALL, "message_undelivered", LendingOutcome.FLAG),
)

# A lending request is born by the borrower's `request` (type New).
INITIAL: tuple[str, L] = ("request", L.NEW)

# A Notification whose ACCEPT / REJECT means nothing in the current status is a plain one.
FALLBACK: dict[str, str] = {"Notification:ACCEPT": "Notification", "Notification:REJECT": "Notification"}

# While the borrower's question waits for staff, only these staff keys are open: answer first.
# A check-in (or completing without return) makes a pending renewal moot: it clears it.
_ALWAYS = frozenset({"add_note", "send_message", "acknowledge", "mark_messages_read"})
WHILE_PENDING: dict[Pending, frozenset[str]] = {
    Pending.CANCEL: _ALWAYS | {"answer_cancel:Y", "answer_cancel:N"},
    Pending.RENEW: _ALWAYS | {"answer_renew:Y", "answer_renew:N", "check_in", "complete_without_return"},
}


LENDING_TABLE: dict[L, dict[str, Target]] = build_table(L, STAFF_ROWS, BORROWER_ROWS, SYSTEM_ROWS)
STAFF_KEYS = row_keys(STAFF_ROWS)
BORROWER_KEYS = (INITIAL[0], *row_keys(BORROWER_ROWS))
SYSTEM_KEYS = row_keys(SYSTEM_ROWS)


# --- guards: conditions beyond the status ----------------------------------------------------


def _cancel_pending(state: LendingState) -> bool:
    return state.pending is Pending.CANCEL


def _renew_pending(state: LendingState) -> bool:
    return state.pending is Pending.RENEW


def _loan_allowed(state: LendingState) -> bool:
    return state.details.service_type is not ServiceType.Copy


def _copy_allowed(state: LendingState) -> bool:
    return state.details.service_type is not ServiceType.Loan


def _has_plain_flag(state: LendingState) -> bool:
    return bool(state.flags - STATUS_BOUND - CLEARED_BY_ACTION)


def _has_unread(state: LendingState) -> bool:
    return LendingAttention.MESSAGE_UNREAD in state.flags


GUARDS: dict[str, tuple[Callable[[LendingState], bool], str]] = {
    "answer_cancel:Y": (_cancel_pending, "the borrower has not asked to cancel"),
    "answer_cancel:N": (_cancel_pending, "the borrower has not asked to cancel"),
    "answer_renew:Y": (_renew_pending, "the borrower has not asked to renew"),
    "answer_renew:N": (_renew_pending, "the borrower has not asked to renew"),
    "ship": (_loan_allowed, "the borrower asked for a copy"),
    "copy_completed": (_copy_allowed, "the borrower asked for a loan"),
    "acknowledge": (_has_plain_flag, "no flag to acknowledge"),
    "mark_messages_read": (_has_unread, "no unread general message"),
}

PENDING_TEXT: dict[Pending, str] = {
    Pending.CANCEL: "answer the borrower's cancel request first",
    Pending.RENEW: "answer the borrower's renew request first",
}


# --- queries -------------------------------------------------------------------------------


def target(status: L, key: str) -> Target | None:
    return LENDING_TABLE[status].get(key)


def _refusal(state: LendingState, key: str) -> str | None:
    """Why a staff key the table has for this status is refused now, or None."""
    if state.pending is not None and key not in WHILE_PENDING[state.pending]:
        return PENDING_TEXT[state.pending]
    guard = GUARDS.get(key)
    if guard and not guard[0](state):
        return guard[1]
    return None


def allowed_lending_actions(state: LendingState) -> tuple[str, ...]:
    """Staff actions legal now, in table order (for the staff UI and the API)."""
    row = LENDING_TABLE[state.status]
    return tuple(k for k in STAFF_KEYS if k in row and _refusal(state, k) is None)


def borrower_keys(status: L) -> tuple[str, ...]:
    """Borrower messages the table accepts in `status` (what an IllegalTransition lists)."""
    row = LENDING_TABLE[status]
    return tuple(k for k in BORROWER_KEYS if k in row)


def check_staff(state: LendingState, key: str) -> Target:
    found = target(state.status, key)
    if found is None:
        raise IllegalTransition(key, state.status.value, allowed_lending_actions(state))
    why = _refusal(state, key)
    if why is not None:
        raise IllegalTransition(key, state.status.value, allowed_lending_actions(state), why)
    return found


def borrower_target(status: L, key: str) -> Target | None:
    """The borrower key's target, after FALLBACK (None: not in the table)."""
    found = target(status, key)
    if found is None and key in FALLBACK:
        found = target(status, FALLBACK[key])
    return found


def is_late(status: L, key: str) -> bool:
    """A borrower key the table lacks for `status`: recorded (True) or refused (False)?"""
    return status in FINAL


# --- documentation -------------------------------------------------------------------------


def render_lending_markdown() -> str:
    """The README's lending status table, generated from the table, outcomes, guards and
    WHILE_PENDING."""
    lines = [
        "| Status | Label | ISO status | Staff actions | Borrower messages | System events |",
        "|---|---|---|---|---|---|",
        f"| (new) | | | | `{INITIAL[0]}` (type New) → {_show(INITIAL[1])} | |",
    ]
    for status in L:
        row = LENDING_TABLE[status]
        cells = [
            "<br>".join(_cell(key, row[key]) for key in keys if key in row)
            for keys in (STAFF_KEYS, BORROWER_KEYS, SYSTEM_KEYS)
        ]
        iso = status.iso.value if status.iso else "*as last reported*"
        lines.append(f"| {status.value} | {status.label} | {iso} | " + " | ".join(cells) + " |")
    lines += ["", "| Outcome | Meaning |", "|---|---|"]
    lines += [f"| {o.value} | {text} |" for o, text in OUTCOME_TEXT.items()]
    lines += ["", "| Action | Also refused when |", "|---|---|"]
    lines += [f"| `{key}` | {why} |" for key, (_, why) in GUARDS.items()]
    lines += ["", "| Waiting for staff | Only these staff actions are open |", "|---|---|"]
    lines += [f"| {p.value} | " + ", ".join(f"`{k}`" for k in STAFF_KEYS if k in keys) + " |"
              for p, keys in WHILE_PENDING.items()]
    lines += ["", "A borrower message the table lacks is refused (`UnrecognisedDataValue`), except in a "
              "final status (" + ", ".join(s.value for s in L if s in FINAL) + "), where it is recorded: "
              "it crossed our last message. `Notification:ACCEPT` / `:REJECT` outside CONDITIONAL "
              "are plain Notifications."]
    return "\n".join(lines) + "\n"


def _cell(key: str, found: Target) -> str:
    return f"`{key}`" if found is SAME else f"`{key}` → {_show(found)}"


def _show(found: Target) -> str:
    return found.value if isinstance(found, L) else f"*{found.value}*"
