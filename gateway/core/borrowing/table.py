"""The borrowing machine in one place: which status follows which, and why.

- Rows of (from statuses, event key, target): staff actions, the partner's messages (keys
  derived from a supplyingAgencyMessage by `partner_key`, below the partner rows) and system
  events (timers, outbox results, keys from `timer_key` and `delivery_key`). A target is a status or an Outcome,
  a named rule whose result depends on the rota or the policy; `RULES` implements each one.
- An event key missing for a status is illegal there, with two exceptions recorded without an
  error: a partner message for an earlier phase than the request's (out of order, `partner_target`),
  and system events, which can always arrive late.
- Guards are the few conditions that are not the status (is there an active partner? where is
  the item?). `allowed_actions` and the README table are derived from the table and GUARDS only.
The handlers (`staff`, `incoming`, `system`) say *what else* happens: messages, rota, history.
Background: docs/state-machines.md.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum
from typing import Callable, Iterable

from gateway.messages.codes import Action, ReasonForMessage, Status, YesNo

from ..errors import IllegalTransition
# Rules run on this side's Step (step.py, which reads MACHINE below); they are typed by the
# kernel's Step so that this module stays below step.py (no import circle).
from ..machine import Rule, Step, Table, flag_guards
from ..rota import EntryState, RotaEntry, current_index, first_pending
from .state import CLEARED_BY_ACTION, STATUS_BOUND, Attention, BorrowingState, ItemLocation
from .statuses import (
    ALL, ANSWERED, AWAITING_ANSWER, BEFORE_SHIPPING, BETWEEN_PARTNERS, FINAL, ON_LOAN, OPEN, SHIPPED,
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


def partner_key(reason: ReasonForMessage, status: Status | None, answer: YesNo | None, *, due_date: object = None,
                has_conditions: bool = False, conditions_assumed_agreed: bool = False) -> str:
    """The key of a partner's supplyingAgencyMessage in PARTNER_ROWS."""
    if reason is ReasonForMessage.RenewResponse:
        # No answer: a new due date is the lender's yes.
        return f"RenewResponse:{answer or (YesNo.Y if due_date else YesNo.N)}"
    if reason is ReasonForMessage.CancelResponse:
        yes = YesNo.Y if status is Status.Cancelled else YesNo.N
        return f"CancelResponse:{answer or yes}"
    if reason is ReasonForMessage.Notification or status is None:
        return "ConditionsAssumedAgreed" if conditions_assumed_agreed else "Notification"
    if status in (Status.WillSupply, Status.ExpectToSupply) and has_conditions:
        return "Conditional"
    return status.value


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


def timer_key(state: BorrowingState, entry: RotaEntry) -> str:
    """The system key of the current partner's deadline passing."""
    if state.status is S.WAITING_FOR_CANCEL_RESPONSE:
        return "cancel_overdue"
    return "no_answer" if entry.status_requested_at is None else "no_answer_after_grace"


def delivery_key(kind: str, action: Action | None) -> str:
    """The system key of a message the outbox gave up on (kind "request" or an action)."""
    if kind == "request":
        return "request_undelivered"
    if action in (Action.Cancel, Action.Renew):
        return f"{action.value.lower()}_undelivered"
    return "message_undelivered"


# A request is born by "create" (there is no status before it).
INITIAL: tuple[str, Target] = ("create", Outcome.FIRST_PARTNER)


# --- out of order: a partner message never moves a request back ------------------------------

# Statuses along the life of a request. A partner's message that would take the request to an
# earlier phase crossed a later one on the wire: it is recorded and ignored, not refused.
PHASE: dict[S, int] = {
    **{s: 0 for s in BETWEEN_PARTNERS | {S.LOCATE_FAILED}},
    S.REQUEST_SENT: 1,
    S.EXPECTED_TO_SUPPLY: 2, S.RETRY_POSSIBLE: 2,
    S.WILL_SUPPLY: 3, S.CONDITIONAL: 3, S.WAITING_FOR_CANCEL_RESPONSE: 3,
    **{s: 4 for s in SHIPPED},
    **{s: 5 for s in ON_LOAN},
    S.RETURNED_TO_PARTNER: 6,
    **{s: 7 for s in FINAL},
}

# Where the partner keys would take a request, ignoring the current status: a key the table
# lacks for a status is out of order if this is no later than the status, else illegal. Keys
# without an entry (responses nobody asked for, Notification) are always just recorded.
NOMINAL: dict[str, S] = {
    "RequestReceived": S.EXPECTED_TO_SUPPLY, "ExpectToSupply": S.EXPECTED_TO_SUPPLY,
    "WillSupply": S.WILL_SUPPLY, "Conditional": S.CONDITIONAL, "RetryPossible": S.RETRY_POSSIBLE,
    "Unfilled": S.REJECTED_BY_PARTNER, "Loaned": S.SHIPPED_PHYSICALLY,
    "CopyCompleted": S.SHIPPED_DIGITALLY, "Overdue": S.OVERDUE, "Recalled": S.RECALLED,
    "HoldReturn": S.RECEIVED_PHYSICALLY, "ReleaseHoldReturn": S.RECEIVED_PHYSICALLY,
    "LoanCompleted": S.COMPLETED, "CompletedWithoutReturn": S.COMPLETED,
    "Cancelled": S.CANCELED_BY_PARTNER,
}


def _earlier(status: S, than: S) -> bool:
    return PHASE[status] < PHASE[than]


def is_out_of_order(status: S, key: str) -> bool:
    """A partner key the table lacks for `status`: recorded (True) or refused (False)?"""
    nominal = NOMINAL.get(key)
    return nominal is None or not _earlier(status, nominal)


def partner_target(status: S, key: str, *, status_response: bool = False) -> Target | None:
    """The target of the current partner's message; None: out of order, recorded and ignored.
    A StatusRequestResponse is only an answer: it applies if it moves the request forward."""
    found = TABLE[status].get(key)
    if status_response and isinstance(found, S) and _earlier(found, status):
        found = None
    if found is None and not (status_response or is_out_of_order(status, key)):
        raise IllegalTransition(key, status.value, partner_keys(status))
    return found


# --- the Outcomes ---------------------------------------------------------------------------


def _same(step: Step, detail: str) -> None:
    step.log(detail)


def _first_partner(step: Step, detail: str) -> None:
    rota = step.state.rota
    if rota:
        step.send_request(0)
        step.log(f"request sent to {rota[0].partner}", event="first_partner")
    else:
        step.go(S.LOCATE_FAILED, "no partner in the rota")


def _next_partner(step: Step, detail: str) -> None:
    step.go(S.REJECTED_BY_PARTNER, detail)
    step.next_partner()


def _staff_left_partner(step: Step, detail: str) -> None:
    step.go(S.REJECTED_BY_PARTNER, detail)
    step.next_partner(end_of_rota="review")


def _partner_cancelled(step: Step, detail: str) -> None:
    if step.policy.on_partner_cancel == "next":
        _next_partner(step, detail)
    else:
        step.go(S.CANCELED_BY_PARTNER, detail)


def _undelivered(step: Step, detail: str) -> None:
    i = current_index(step.state.rota)
    assert i is not None
    if step.policy.on_send_failure == "next" and first_pending(step.state.rota) is not None:
        step.set_entry(i, state=EntryState.SKIPPED, reason="request not delivered")
        step.log(detail)
        step.next_partner()
    else:
        step.set_entry(i, undelivered=True)
        step.flag(Attention.SEND_FAILED)
        step.go(S.READY_TO_SEND, detail)


def _locate(step: Step, detail: str) -> None:
    rota = step.state.rota
    i = current_index(rota) if step.state.active is not None else first_pending(rota)
    if i is None:
        step.go(S.LOCATE_FAILED, f"{detail}: no partner to send to")
        return
    step.send_request(i)
    step.flag(Attention.SEND_FAILED, False)
    step.go(S.READY_TO_SEND, f"{detail}: request sent to {step.state.rota[i].partner}")


def _cancel(step: Step, detail: str) -> None:
    info, active = step.state.cancel, step.state.active
    assert info is not None, "the cancel handler records who asked"
    if active is not None and not active.undelivered:
        note = "; ".join(x for x in (info.reason, info.note) if x) or None
        step.send(active.partner, Action.Cancel, note)
        step.set(previous_status=step.state.status, cancel=replace(info, sent_at=step.at))
        step.go(S.WAITING_FOR_CANCEL_RESPONSE, f"{detail}; Cancel sent to {active.partner}")
        return
    i = current_index(step.state.rota)
    if active is not None and i is not None:
        step.set_entry(i, state=EntryState.CANCELLED, reason="request cancelled")
    step.go(S.CANCELED_BY_PATRON if info.by_patron else S.CANCELED_BY_STAFF, detail)


def _canceled_by_requester(step: Step, detail: str) -> None:
    cancel = step.state.cancel
    i = current_index(step.state.rota)
    if i is not None:
        step.set_entry(i, state=EntryState.CANCELLED, reason=step.state.rota[i].reason or "request cancelled")
    step.set(previous_status=None)
    step.go(S.CANCELED_BY_PATRON if cancel and cancel.by_patron else S.CANCELED_BY_STAFF, detail)


def _restore(step: Step, detail: str) -> None:
    cancelling = step.state.status is S.WAITING_FOR_CANCEL_RESPONSE
    what = "cancel not accepted" if cancelling else "renew failed"
    restored = step.state.previous_status or S.REQUEST_SENT
    step.go(restored, f"{detail}; {what}" if detail else what)
    step.set(previous_status=None, cancel=None if cancelling else step.state.cancel)


def _defer(step: Step, detail: str) -> None:
    before = step.state.previous_status
    later = TABLE[before].get(step.key) if before else None
    if before is not None and isinstance(later, S) and not _earlier(later, before):
        step.set(previous_status=later)
        step.log(f"{detail}; {later.value} applies if the cancel is refused")
    else:
        step.log(f"{detail}; recorded while waiting for the cancel response")


RULES: dict[Outcome, Rule] = {
    Outcome.SAME: _same, Outcome.FIRST_PARTNER: _first_partner, Outcome.NEXT_PARTNER: _next_partner,
    Outcome.STAFF_LEFT_PARTNER: _staff_left_partner, Outcome.PARTNER_CANCELLED: _partner_cancelled,
    Outcome.UNDELIVERED: _undelivered, Outcome.LOCATE: _locate, Outcome.CANCEL: _cancel,
    Outcome.CANCELED_BY_REQUESTER: _canceled_by_requester, Outcome.RESTORE: _restore, Outcome.DEFER: _defer,
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
    **flag_guards(STATUS_BOUND | CLEARED_BY_ACTION, Attention.MESSAGE_UNREAD),
    "treat_as_cancelled": (_cancel_overdue, "the partner's answer to the Cancel is not overdue yet"),
    "resume_request": (_cancel_overdue, "the partner's answer to the Cancel is not overdue yet"),
}


MACHINE: Table[S] = Table(S, staff=STAFF_ROWS, partner=PARTNER_ROWS, system=SYSTEM_ROWS, initial=INITIAL,
                          rules=RULES, outcome_text=OUTCOME_TEXT, guards=GUARDS)
TABLE: dict[S, dict[str, Target]] = MACHINE.rows
STAFF_KEYS = (INITIAL[0], *MACHINE.staff_keys)
PARTNER_KEYS = MACHINE.partner_keys


# --- queries -------------------------------------------------------------------------------


def target(status: S, key: str) -> Target | None:
    return MACHINE.target(status, key)


def allowed_actions(state: BorrowingState) -> tuple[str, ...]:
    """Staff actions legal now, in table order (for the staff UI and the API)."""
    return MACHINE.allowed(state)


def partner_keys(status: S) -> tuple[str, ...]:
    return MACHINE.keys_in(status, PARTNER_KEYS)


def check_staff(state: BorrowingState, key: str) -> Target:
    return MACHINE.check(state, key)


def render_markdown() -> str:
    """The README's borrowing status table, generated from the table, outcomes and guards."""
    lines = MACHINE.markdown(("Staff actions", "Partner messages", "System events"), initial_column=0)
    return "\n".join(lines) + "\n"
