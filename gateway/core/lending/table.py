"""The lending machine in one place: which status follows which, and why.

- Rows of (from statuses, event key, target): staff actions, the borrower's messages (keys
  derived by `borrower_key` and `request_key`, below the borrower rows) and system events
  (timers, outbox results). A target is a status or a LendingOutcome, a named rule (answer at
  once, wait for staff, flag...); `RULES` implements each one.
- An event key missing for a status is illegal there, with two exceptions recorded without an
  error: any borrower message in a final status (`is_late`: it crossed our last message), and
  system events, which can always arrive late.
- Guards are the few conditions that are not the status (is a cancel pending? was a copy
  requested?). While the borrower's cancel or renew waits for staff (`Pending`), only the keys
  of WHILE_PENDING are open to staff. `allowed_lending_actions` and the README table are derived
  from the table, GUARDS and WHILE_PENDING only.
The handlers (`staff`, `incoming`, `system`) say *what else* happens: messages, history, flags.
Background: docs/state-machines.md.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Callable, Iterable

from gateway.messages.codes import Action, ReasonForMessage, RequestType, ServiceType, Status, YesNo
from gateway.messages.peers import condition_answer

# Rules run on this side's Step (step.py, which reads MACHINE below); they are typed by the
# kernel's Step so that this module stays below step.py (no import circle).
from ..machine import Rule, Step, Table, flag_guards
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

# Keys of the borrower's messages: requestingAgencyMessage actions (`borrower_key`) and request
# types other than New (`request_key`).
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



def borrower_key(action: Action, note: str | None) -> str:
    """The key of a requestingAgencyMessage: its action; a Notification that answers our loan
    conditions (ReShare's marker or Alma's free text) is `Notification:ACCEPT` / `:REJECT`."""
    if action is Action.Notification:
        answer = condition_answer(note)
        return f"Notification:{answer}" if answer else "Notification"
    return action.value


def request_key(request_type: RequestType) -> str:
    """The key of an incoming `request`: type New starts a request, the others are rows."""
    return "request" if request_type is RequestType.New else request_type.value


# A borrower message the table lacks is refused (UnrecognisedDataValue), except in a final status:
# there it crossed our last message on the wire and is recorded. (No phases as when borrowing:
# the borrower's messages answer ours, they do not report a status of their own.)
def is_late(status: L) -> bool:
    """A borrower key the table lacks for `status`: recorded (True) or refused (False)?"""
    return status in FINAL


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


# --- the Outcomes ---------------------------------------------------------------------------


def _same(step: Step, detail: str) -> None:
    step.log(detail)  # FLAG too: the handler sets the flag


def _answer_status(step: Step, detail: str) -> None:
    step.send_answer(ReasonForMessage.StatusRequestResponse, None, due_date=step.state.due_date)
    step.log(f"{detail}; answered {step.state.iso_status.value}")


def _wait_for_staff(pending: Pending, what: str) -> Rule:
    def rule(step: Step, detail: str) -> None:
        if step.state.pending is pending:
            step.log(f"{detail}; already waiting for staff")
        else:
            step.set(pending=pending, pending_since=step.at)
            step.log(f"{detail}; {what} requested, waiting for staff")
    return rule


def _accept_cancel(step: Step, detail: str) -> None:
    step.send_answer(ReasonForMessage.CancelResponse, YesNo.Y, Status.Cancelled)
    step.go(L.CANCELLED, f"{detail}; cancel accepted at once")


def _refuse_cancel(step: Step, detail: str) -> None:
    step.send_answer(ReasonForMessage.CancelResponse, YesNo.N, note="The item has already been sent")
    step.log(f"{detail}; cancel refused at once, the item has been sent")


def _expire(step: Step, detail: str) -> None:
    if step.state.pending is Pending.CANCEL:
        step.clear_pending()
        step.send_answer(ReasonForMessage.CancelResponse, YesNo.Y, Status.Cancelled, note="expired")
        step.go(L.CANCELLED, f"{detail}; the borrower's cancel accepted")
        return
    reason = step.policy.expiry_reason_unfilled
    step.set(reason=reason)
    step.send_status(Status.Unfilled, reason_unfilled=reason, note="expired")
    step.go(L.UNFILLED, f"{detail}; unfilled: {reason}")


O = LendingOutcome
RULES: dict[LendingOutcome, Rule] = {
    O.SAME: _same, O.ANSWER_STATUS: _answer_status, O.CANCEL_REQUESTED: _wait_for_staff(Pending.CANCEL, "cancel"),
    O.ACCEPT_CANCEL: _accept_cancel, O.REFUSE_CANCEL: _refuse_cancel,
    O.RENEW_REQUESTED: _wait_for_staff(Pending.RENEW, "renewal"), O.FLAG: _same, O.EXPIRE: _expire,
}


# --- guards: conditions beyond the status ----------------------------------------------------


def _cancel_pending(state: LendingState) -> bool:
    return state.pending is Pending.CANCEL


def _renew_pending(state: LendingState) -> bool:
    return state.pending is Pending.RENEW


def _loan_allowed(state: LendingState) -> bool:
    return state.details.service_type is not ServiceType.Copy


def _copy_allowed(state: LendingState) -> bool:
    return state.details.service_type is not ServiceType.Loan


GUARDS: dict[str, tuple[Callable[[LendingState], bool], str]] = {
    "answer_cancel:Y": (_cancel_pending, "the borrower has not asked to cancel"),
    "answer_cancel:N": (_cancel_pending, "the borrower has not asked to cancel"),
    "answer_renew:Y": (_renew_pending, "the borrower has not asked to renew"),
    "answer_renew:N": (_renew_pending, "the borrower has not asked to renew"),
    "ship": (_loan_allowed, "the borrower asked for a copy"),
    "copy_completed": (_copy_allowed, "the borrower asked for a loan"),
    **flag_guards(STATUS_BOUND | CLEARED_BY_ACTION, LendingAttention.MESSAGE_UNREAD),
}

PENDING_TEXT: dict[Pending, str] = {
    Pending.CANCEL: "answer the borrower's cancel request first",
    Pending.RENEW: "answer the borrower's renew request first",
}


def _while_pending(state: LendingState, key: str) -> str | None:
    if state.pending is not None and key not in WHILE_PENDING[state.pending]:
        return PENDING_TEXT[state.pending]
    return None


MACHINE: Table[L] = Table(L, staff=STAFF_ROWS, partner=BORROWER_ROWS, system=SYSTEM_ROWS, initial=INITIAL,
                          rules=RULES, outcome_text=OUTCOME_TEXT, guards=GUARDS, refusal=_while_pending)
LENDING_TABLE: dict[L, dict[str, Target]] = MACHINE.rows
STAFF_KEYS = MACHINE.staff_keys
BORROWER_KEYS = (INITIAL[0], *MACHINE.partner_keys)


# --- queries -------------------------------------------------------------------------------


def target(status: L, key: str) -> Target | None:
    return MACHINE.target(status, key)


def allowed_lending_actions(state: LendingState) -> tuple[str, ...]:
    """Staff actions legal now, in table order (for the staff UI and the API)."""
    return MACHINE.allowed(state)


def borrower_keys(status: L) -> tuple[str, ...]:
    """Borrower messages the table accepts in `status` (what an IllegalTransition lists)."""
    return MACHINE.keys_in(status, BORROWER_KEYS)


def check_staff(state: LendingState, key: str) -> Target:
    return MACHINE.check(state, key)


def borrower_target(status: L, key: str) -> Target | None:
    """The borrower key's target, after FALLBACK (None: not in the table)."""
    found = target(status, key)
    if found is None and key in FALLBACK:
        found = target(status, FALLBACK[key])
    return found


# --- documentation -------------------------------------------------------------------------


def render_lending_markdown() -> str:
    """The README's lending status table, generated from the table, outcomes, guards and
    WHILE_PENDING."""
    lines = MACHINE.markdown(("Staff actions", "Borrower messages", "System events"), initial_column=1,
                             initial_note=" (type New)", extra=("ISO status", _iso))
    lines += ["", "| Waiting for staff | Only these staff actions are open |", "|---|---|"]
    lines += [f"| {p.value} | " + ", ".join(f"`{k}`" for k in STAFF_KEYS if k in keys) + " |"
              for p, keys in WHILE_PENDING.items()]
    lines += ["", "A borrower message the table lacks is refused (`UnrecognisedDataValue`), except in a "
              "final status (" + ", ".join(s.value for s in L if is_late(s)) + "), where it is recorded: "
              "it crossed our last message. `Notification:ACCEPT` / `:REJECT` outside CONDITIONAL "
              "are plain Notifications."]
    return "\n".join(lines) + "\n"


def _iso(status: L) -> str:
    return status.iso.value if status.iso else "*as last reported*"
