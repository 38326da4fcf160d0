"""The lending (supplying agency) state machine: `decide_lending(state, event, policy)`.

Pure: no I/O, no clock, never mutates its input. An illegal input raises IllegalTransition (or
InvalidInput for a bad field) and so changes nothing. Which status follows which is in
`transitions.LENDING_TABLE`; the handlers here add the outgoing messages, history and flags.

Outgoing reasonForMessage: the first status message for a request (or for its retry) carries
RequestResponse, later ones StatusChange; answers carry CancelResponse / RenewResponse /
StatusRequestResponse; general messages Notification (with the current ISO status).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Callable

from gateway.messages.codes import Action, ReasonForMessage, RequestType, Status, YesNo

from ..errors import IllegalTransition, InvalidInput
from ..borrowing.events import AddNote, MarkMessagesRead, SendMessage, StaffEvent, Tick
from ..borrowing.state import GeneralMessage, Note
from .events import (
    AnswerCancel, AnswerRenew, CheckIn, ClearFlag, CompleteCopy, CompleteWithoutReturn, ExpectToSupply,
    IncomingRequest, LendingEvent, MarkOverdue, MarkUnfilled, MessageUndelivered, OfferConditions, OfferRetry,
    Recall, RequesterMessage, Ship, WillSupply,
)
from .policy import DEFAULT_LENDING_POLICY, LendingPolicy, expires_at
from .state import (
    CLEARED_BY_ACTION, STATUS_BOUND, LendingAttention, LendingDecision, LendingHistoryEntry, LendingState,
    OutgoingSupplierMessage, Pending, status_flags,
)
from .statuses import LendingStatus as L
from .table import (
    INITIAL, LendingOutcome, Target, allowed_lending_actions, borrower_keys, borrower_target, check_staff,
    is_late, target,
)

__all__ = ["decide_lending", "next_lending_deadline"]

SYSTEM = "system"
O = LendingOutcome


def decide_lending(state: LendingState | None, event: LendingEvent,
                   policy: LendingPolicy = DEFAULT_LENDING_POLICY) -> LendingDecision:
    """Apply one event. `state` is None only for an IncomingRequest, which starts a request."""
    if state is None:
        if isinstance(event, IncomingRequest) and event.request_type is not RequestType.Reminder:
            return _start(event)
        key = getattr(event, "key", type(event).__name__)
        raise IllegalTransition(key, "(new)", (INITIAL[0],), "no request yet")
    if isinstance(event, IncomingRequest):
        return _incoming_request(state, event)
    if isinstance(event, RequesterMessage):
        return _requester_message(state, event)
    if isinstance(event, StaffEvent):
        return _staff(state, event)
    if isinstance(event, Tick):
        return _tick(state, event, policy)
    if isinstance(event, MessageUndelivered):
        return _undelivered(state, event)
    raise TypeError(f"not a lending event: {event!r}")


def next_lending_deadline(state: LendingState, policy: LendingPolicy = DEFAULT_LENDING_POLICY) -> datetime | None:
    """When a Tick would next change this request (the store's deadline), or None."""
    if target(state.status, "expire") is None:
        return None
    return expires_at(state.received_at, policy)


# --- one step ---------------------------------------------------------------------------------


class _Step:
    """The new state, messages and history of one `decide_lending` call (local to it)."""

    def __init__(self, state: LendingState, *, actor: str, at: datetime, key: str, is_new: bool = False):
        self.previous = None if is_new else state
        self.state = state
        self.actor, self.at, self.key = actor, at, key
        self.outgoing: list[OutgoingSupplierMessage] = []
        self.history: list[LendingHistoryEntry] = []
        self.messages: list[GeneralMessage] = []
        self.notes: list[Note] = []

    def set(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)

    def log(self, detail: str = "", *, event: str | None = None) -> None:
        status = self.state.status
        self.history.append(LendingHistoryEntry(self.at, self.actor, event or self.key, status, status, detail))

    def go(self, status: L, detail: str = "") -> None:
        self.history.append(LendingHistoryEntry(self.at, self.actor, self.key, self.state.status, status, detail))
        self.set(status=status)
        if status.iso is not None:
            self.set(iso_status=status.iso)

    def flag(self, flag: LendingAttention, on: bool = True) -> None:
        self.set(flags=self.state.flags | {flag} if on else self.state.flags - {flag})

    def clear_pending(self) -> None:
        self.set(pending=None, pending_since=None)

    def _out(self, status: Status, reason: ReasonForMessage, **fields: Any) -> OutgoingSupplierMessage:
        message = OutgoingSupplierMessage(partner=self.state.partner, status=status, reason=reason, **fields)
        self.outgoing.append(message)
        return message

    def send_status(self, status: Status, **fields: Any) -> None:
        """A status message: RequestResponse if it is our first answer, else StatusChange."""
        reason = ReasonForMessage.StatusChange if self.state.responded else ReasonForMessage.RequestResponse
        self._out(status, reason, **fields)
        self.set(responded=True, iso_status=status)
        self.flag(LendingAttention.REMINDER, False)  # the borrower has its answer

    def send_answer(self, reason: ReasonForMessage, answer: YesNo | None, status: Status | None = None,
                    **fields: Any) -> None:
        self._out(status or self.state.iso_status, reason, answer=answer, **fields)

    def send_notification(self, note: str) -> None:
        self._out(self.state.iso_status, ReasonForMessage.Notification, note=note)
        self.messages.append(GeneralMessage(self.at, self.state.partner, "out", note, self.state.iso_status))

    def finish(self) -> LendingDecision:
        state = self.state
        flags = (state.flags - STATUS_BOUND) | status_flags(state)
        if flags != state.flags:
            state = replace(state, flags=flags)
        return LendingDecision(state, self.previous, tuple(self.outgoing), tuple(self.history),
                               tuple(self.messages), tuple(self.notes))


def _with(detail: str, note: str | None) -> str:
    return f"{detail}; note: {note}" if note else detail


# --- the borrower's request ------------------------------------------------------------------


def _start(event: IncomingRequest) -> LendingDecision:
    state = LendingState(partner=event.partner, details=event.details, status=L.NEW, received_at=event.received_at)
    step = _Step(state, actor=event.partner, at=event.received_at, key=INITIAL[0], is_new=True)
    d = event.details
    what = f"{d.service_type.value} request" + (f" for {d.title!r}" if d.title else "")
    if event.request_type is RequestType.Retry:
        what += " (a retry of a request we do not know)"
    detail = f"{what} from {event.partner}"
    step.history.append(LendingHistoryEntry(step.at, step.actor, INITIAL[0], None, L.NEW, detail))
    return step.finish()


def _incoming_request(state: LendingState, event: IncomingRequest) -> LendingDecision:
    _check_partner(state, event.key, event.partner)
    key = event.key
    if key == INITIAL[0]:
        raise IllegalTransition(key, state.status.value, borrower_keys(state.status), "the request exists")
    step = _Step(state, actor=event.partner, at=event.received_at, key=key)
    found = target(state.status, key)
    if found is None:
        return _late_or_refused(step, state, key, f"request of type {key}")
    if key == "Retry":
        changed = event.details.changed_fields(state.details)
        step.set(details=event.details, received_at=event.received_at, responded=False, reason=None,
                 loan_conditions=(), offered_costs=(), iso_status=Status.RequestReceived)
        _apply(step, found, "retry received" + (f", changed {', '.join(changed)}" if changed else ", unchanged"))
    else:  # Reminder
        step.flag(LendingAttention.REMINDER)
        _apply(step, found, "reminder received")
    return step.finish()


def _check_partner(state: LendingState, key: str, partner: str) -> None:
    if partner != state.partner:
        raise IllegalTransition(key, state.status.value, (), f"{partner} is not the requesting agency of this request")


def _late_or_refused(step: _Step, state: LendingState, key: str, what: str) -> LendingDecision:
    if is_late(state.status, key):
        step.log(f"{what}; the request has ended, recorded and ignored", event="late")
        return step.finish()
    raise IllegalTransition(key, state.status.value, borrower_keys(state.status))


# --- the borrower's messages -----------------------------------------------------------------


def _requester_message(state: LendingState, msg: RequesterMessage) -> LendingDecision:
    _check_partner(state, msg.key, msg.partner)
    key = msg.key
    step = _Step(state, actor=msg.partner, at=msg.received_at, key=key)
    found = borrower_target(state.status, key)
    changes = found not in (O.SAME, O.ANSWER_STATUS)  # None too: it would be refused or late
    if changes and _is_stale(state, msg):
        return _stale(step, state, msg)
    if found is None:
        return _late_or_refused(step, state, key, _with(msg.action.value, msg.note))
    if changes and msg.timestamp is not None:
        step.set(borrower_timestamp=msg.timestamp)  # not stale: no earlier than the last one
    if msg.action is Action.Notification:
        if msg.note:  # a general message from the borrower waits for staff to read it
            step.messages.append(GeneralMessage(msg.received_at, msg.partner, "in", msg.note))
            step.flag(LendingAttention.MESSAGE_UNREAD)
        detail = _with("general message", msg.note)
        if found is L.WILL_SUPPLY:
            detail = _with("the borrower accepted the conditions", msg.note)
        elif found is L.UNFILLED:
            detail = _with("the borrower rejected the conditions", msg.note)
            step.set(reason="conditions rejected by the borrower")
        _apply(step, found, detail)
        return step.finish()
    _BORROWER_EFFECTS.get(msg.action.value, _nothing)(step, msg)
    _apply(step, found, _with(msg.action.value, msg.note))
    return step.finish()


def _is_stale(state: LendingState, msg: RequesterMessage) -> bool:
    """Written (by the borrower's clock) before its latest message that changed the request.
    Only the borrower's own timestamps are compared, so clock skew does not matter; equal
    timestamps are not stale."""
    return (msg.timestamp is not None and state.borrower_timestamp is not None
            and msg.timestamp < state.borrower_timestamp)


def _stale(step: _Step, state: LendingState, msg: RequesterMessage) -> LendingDecision:
    if msg.action is Action.Notification and msg.note:
        step.messages.append(GeneralMessage(msg.received_at, msg.partner, "in", msg.note))
    assert msg.timestamp is not None and state.borrower_timestamp is not None
    step.log(_with(f"{msg.action.value}; stale: written {msg.timestamp.isoformat()}, before the borrower's "
                   f"message of {state.borrower_timestamp.isoformat()} that changed the request; ignored",
                   msg.note), event="stale")
    return step.finish()


def _nothing(step: _Step, msg: RequesterMessage) -> None:
    return None


def _received(step: _Step, msg: RequesterMessage) -> None:
    step.set(borrower_received_at=step.state.borrower_received_at or msg.received_at)


def _shipped_return(step: _Step, msg: RequesterMessage) -> None:
    if step.state.pending is Pending.RENEW:
        step.log("the pending renew request is moot: the item is on its way back", event="renew_withdrawn")
        step.clear_pending()
    step.set(return_shipped_at=msg.received_at)


def _lost(step: _Step, msg: RequesterMessage) -> None:
    step.flag(LendingAttention.LOST)


_BORROWER_EFFECTS: dict[str, Callable[[_Step, RequesterMessage], None]] = {
    "Received": _received, "ShippedReturn": _shipped_return, "Lost": _lost,
}


def _apply(step: _Step, found: Target, detail: str) -> None:
    """Carry out a borrower or system target (staff targets are plain statuses or SAME)."""
    if isinstance(found, L):
        step.go(found, detail)
    elif found is O.SAME or found is O.FLAG:
        step.log(detail)
    elif found is O.ANSWER_STATUS:
        step.send_answer(ReasonForMessage.StatusRequestResponse, None, due_date=step.state.due_date)
        step.log(f"{detail}; answered {step.state.iso_status.value}")
    elif found is O.CANCEL_REQUESTED:
        if step.state.pending is Pending.CANCEL:
            step.log(f"{detail}; already waiting for staff")
        else:
            step.set(pending=Pending.CANCEL, pending_since=step.at)
            step.log(f"{detail}; cancel requested, waiting for staff")
    elif found is O.ACCEPT_CANCEL:
        step.send_answer(ReasonForMessage.CancelResponse, YesNo.Y, Status.Cancelled)
        step.go(L.CANCELLED, f"{detail}; cancel accepted at once")
    elif found is O.REFUSE_CANCEL:
        step.send_answer(ReasonForMessage.CancelResponse, YesNo.N, note="The item has already been sent")
        step.log(f"{detail}; cancel refused at once, the item has been sent")
    elif found is O.RENEW_REQUESTED:
        if step.state.pending is Pending.RENEW:
            step.log(f"{detail}; already waiting for staff")
        else:
            step.set(pending=Pending.RENEW, pending_since=step.at)
            step.log(f"{detail}; renewal requested, waiting for staff")
    else:  # EXPIRE belongs to the timer
        raise AssertionError(f"{found} is handled by its own event")


# --- staff -------------------------------------------------------------------------------------


def _staff(state: LendingState, event: StaffEvent) -> LendingDecision:
    handler = _HANDLERS.get(type(event))
    if handler is None:  # e.g. a borrowing action: name it like any other illegal action
        raise IllegalTransition(event.key, state.status.value, allowed_lending_actions(state),
                                "not a lending action")
    found = check_staff(state, event.key)
    step = _Step(state, actor=event.by, at=event.at, key=event.key)
    handler(step, event, found)
    return step.finish()


def _go_or_log(step: _Step, found: Target, detail: str) -> None:
    if isinstance(found, L):
        step.go(found, detail)
    else:
        step.log(detail)


def _add_note(step: _Step, ev: AddNote, found: Target) -> None:
    step.notes.append(Note(step.at, ev.by, ev.text))
    _go_or_log(step, found, f"note: {ev.text}")


def _send_message(step: _Step, ev: SendMessage, found: Target) -> None:
    step.send_notification(ev.note)
    _go_or_log(step, found, f"general message to {step.state.partner}: {ev.note}")


def _acknowledge(step: _Step, ev: ClearFlag, found: Target) -> None:
    if ev.flag in STATUS_BOUND | CLEARED_BY_ACTION or ev.flag not in step.state.flags:
        raise InvalidInput("flag", f"{ev.flag.value} is not a flag staff can clear now")
    step.flag(ev.flag, False)
    _go_or_log(step, found, f"acknowledged {ev.flag.value}")


def _mark_messages_read(step: _Step, ev: MarkMessagesRead, found: Target) -> None:
    step.flag(LendingAttention.MESSAGE_UNREAD, False)
    _go_or_log(step, found, "general messages marked read")


def _expect_to_supply(step: _Step, ev: ExpectToSupply, found: Target) -> None:
    step.send_status(Status.ExpectToSupply, note=ev.note)
    _go_or_log(step, found, _with("expect to supply", ev.note))


def _will_supply(step: _Step, ev: WillSupply, found: Target) -> None:
    withdrawn = step.state.status is L.CONDITIONAL
    if withdrawn:
        step.set(loan_conditions=(), offered_costs=())
    step.send_status(Status.WillSupply, note=ev.note)
    _go_or_log(step, found, _with("will supply" + (" without conditions" if withdrawn else ""), ev.note))


def _conditional(step: _Step, ev: OfferConditions, found: Target) -> None:
    step.set(loan_conditions=ev.loan_conditions, offered_costs=ev.offered_costs)
    step.send_status(ev.status, note=ev.note, loan_conditions=ev.loan_conditions, offered_costs=ev.offered_costs)
    parts = []
    if ev.loan_conditions:
        parts.append("conditions: " + ", ".join(ev.loan_conditions))
    if ev.offered_costs:
        parts.append("costs: " + ", ".join(f"{amount} {currency}" for amount, currency in ev.offered_costs))
    _go_or_log(step, found, _with(f"{ev.status.value} on conditions; " + "; ".join(parts), ev.note))


def _retry_possible(step: _Step, ev: OfferRetry, found: Target) -> None:
    step.set(reason=ev.reason_retry)
    step.send_status(Status.RetryPossible, note=ev.note, reason_retry=ev.reason_retry, retry_after=ev.retry_after,
                     retry_before=ev.retry_before, loan_conditions=ev.loan_conditions,
                     offered_costs=ev.offered_costs)
    _go_or_log(step, found, _with(f"retry possible: {ev.reason_retry}", ev.note))


def _unfilled(step: _Step, ev: MarkUnfilled, found: Target) -> None:
    step.set(reason=ev.reason_unfilled)
    step.send_status(Status.Unfilled, note=ev.note, reason_unfilled=ev.reason_unfilled)
    _go_or_log(step, found, _with("unfilled" + (f": {ev.reason_unfilled}" if ev.reason_unfilled else ""), ev.note))


def _ship(step: _Step, ev: Ship, found: Target) -> None:
    step.set(due_date=ev.due_date, item_ids=ev.item_ids, shipped_at=step.at)
    step.send_status(Status.Loaned, note=ev.note, due_date=ev.due_date, item_ids=ev.item_ids,
                     delivery_costs=ev.delivery_costs, sent_via=ev.sent_via, date_sent=step.at,
                     loan_conditions=step.state.loan_conditions)
    items = f"; items {', '.join(ev.item_ids)}" if ev.item_ids else ""
    _go_or_log(step, found, _with(f"shipped, due {ev.due_date.isoformat()}{items}", ev.note))


def _copy_completed(step: _Step, ev: CompleteCopy, found: Target) -> None:
    step.set(item_ids=ev.item_ids, shipped_at=step.at)
    step.send_status(Status.CopyCompleted, note=ev.note, url=ev.url, item_ids=ev.item_ids,
                     delivery_costs=ev.delivery_costs, sent_via=ev.sent_via, date_sent=step.at)
    _go_or_log(step, found, _with("copy delivered" + (f": {ev.url}" if ev.url else ""), ev.note))


def _answer_cancel(step: _Step, ev: AnswerCancel, found: Target) -> None:
    step.clear_pending()
    if ev.answer is YesNo.Y:
        step.send_answer(ReasonForMessage.CancelResponse, YesNo.Y, Status.Cancelled, note=ev.note)
        _go_or_log(step, found, _with("cancel accepted", ev.note))
    else:
        step.send_answer(ReasonForMessage.CancelResponse, YesNo.N, note=ev.note)
        _go_or_log(step, found, _with("cancel refused", ev.note))


def _answer_renew(step: _Step, ev: AnswerRenew, found: Target) -> None:
    step.clear_pending()
    if ev.answer is YesNo.Y:
        assert ev.due_date is not None  # AnswerRenew checks it
        if ev.due_date <= step.at:
            raise InvalidInput("due_date", "must be in the future")
        step.set(due_date=ev.due_date)
        step.send_answer(ReasonForMessage.RenewResponse, YesNo.Y, Status.Loaned, note=ev.note, due_date=ev.due_date)
        _go_or_log(step, found, _with(f"renewed until {ev.due_date.isoformat()}", ev.note))
    else:
        step.send_answer(ReasonForMessage.RenewResponse, YesNo.N, note=ev.note, due_date=step.state.due_date)
        _go_or_log(step, found, _with("renewal refused", ev.note))


def _mark_overdue(step: _Step, ev: MarkOverdue, found: Target) -> None:
    step.send_status(Status.Overdue, note=ev.note, due_date=step.state.due_date)
    _go_or_log(step, found, _with("overdue", ev.note))


def _recall(step: _Step, ev: Recall, found: Target) -> None:
    if ev.due_date is not None:
        step.set(due_date=ev.due_date)
    step.send_status(Status.Recalled, note=ev.note, due_date=step.state.due_date)
    due = f", now due {ev.due_date.isoformat()}" if ev.due_date else ""
    _go_or_log(step, found, _with(f"recalled{due}", ev.note))


def _end_loan(step: _Step, status: Status, detail: str, note: str | None, found: Target) -> None:
    if step.state.pending is Pending.RENEW:
        step.log("the pending renew request is moot: the loan has ended", event="renew_withdrawn")
        step.clear_pending()
    step.flag(LendingAttention.LOST, False)
    step.send_status(status, note=note)
    _go_or_log(step, found, _with(detail, note))


def _check_in(step: _Step, ev: CheckIn, found: Target) -> None:
    _end_loan(step, Status.LoanCompleted, "checked in", ev.note, found)


def _complete_without_return(step: _Step, ev: CompleteWithoutReturn, found: Target) -> None:
    _end_loan(step, Status.CompletedWithoutReturn, "completed without return", ev.note, found)


_HANDLERS: dict[type, Callable[[_Step, Any, Target], None]] = {
    AddNote: _add_note, SendMessage: _send_message, ClearFlag: _acknowledge, MarkMessagesRead: _mark_messages_read,
    ExpectToSupply: _expect_to_supply, WillSupply: _will_supply, OfferConditions: _conditional,
    OfferRetry: _retry_possible, MarkUnfilled: _unfilled, Ship: _ship, CompleteCopy: _copy_completed,
    AnswerCancel: _answer_cancel, AnswerRenew: _answer_renew, MarkOverdue: _mark_overdue, Recall: _recall,
    CheckIn: _check_in, CompleteWithoutReturn: _complete_without_return,
}


# --- system ------------------------------------------------------------------------------------


def _tick(state: LendingState, event: Tick, policy: LendingPolicy) -> LendingDecision:
    """Expiry: a request still NEW when its time is up is answered for the library."""
    due = next_lending_deadline(state, policy)
    if due is None or event.now < due:
        return _Step(state, actor=SYSTEM, at=event.now, key="tick").finish()  # nothing due
    step = _Step(state, actor=SYSTEM, at=event.now, key="expire")
    since = f"unanswered since {state.received_at.isoformat()}"
    if state.pending is Pending.CANCEL:
        step.clear_pending()
        step.send_answer(ReasonForMessage.CancelResponse, YesNo.Y, Status.Cancelled, note="expired")
        step.go(L.CANCELLED, f"expired, {since}; the borrower's cancel accepted")
        return step.finish()
    reason = policy.expiry_reason_unfilled
    step.set(reason=reason)
    step.send_status(Status.Unfilled, reason_unfilled=reason, note="expired")
    step.go(L.UNFILLED, f"expired, {since}; unfilled: {reason}")
    return step.finish()


def _undelivered(state: LendingState, event: MessageUndelivered) -> LendingDecision:
    step = _Step(state, actor=SYSTEM, at=event.at, key=event.key)
    step.flag(LendingAttention.SEND_FAILED)
    what = " ".join(x.value for x in (event.status, event.reason) if x is not None) or "message"
    step.log(f"{what} could not be delivered to {event.partner}")
    return step.finish()
