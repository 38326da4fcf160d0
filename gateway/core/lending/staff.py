"""Staff actions on a lending request: what each sends and does besides its status.

The status each action leads to comes from the transition table (`check_staff`), which also
refuses actions illegal in the current status, failing a guard, or not open while the borrower's
question waits for staff.
"""

from __future__ import annotations

from typing import Any, Callable

from gateway.messages.codes import ReasonForMessage, Status, YesNo

from ..common import AddNote, MarkMessagesRead, SendMessage, StaffEvent
from ..errors import IllegalTransition, InvalidInput
from ..machine import acknowledge, add_note, mark_messages_read
from .events import (
    AnswerCancel, AnswerRenew, CheckIn, ClearFlag, CompleteCopy, CompleteWithoutReturn, ExpectToSupply,
    MarkOverdue, MarkUnfilled, OfferConditions, OfferRetry, Recall, Ship, WillSupply,
)
from .state import LendingAttention, LendingDecision, LendingState, Pending
from .statuses import LendingStatus as L
from .step import Step, with_note
from .table import Target, allowed_lending_actions, check_staff


def handle(state: LendingState, event: StaffEvent) -> LendingDecision:
    handler = _HANDLERS.get(type(event))
    if handler is None:  # e.g. a borrowing action: name it like any other illegal action
        raise IllegalTransition(event.key, state.status.value, allowed_lending_actions(state),
                                "not a lending action")
    found = check_staff(state, event.key)
    step = Step(state, actor=event.by, at=event.at, key=event.key)
    handler(step, event, found)
    return step.finish()


def _send_message(step: Step, ev: SendMessage, found: Target) -> None:
    step.send_notification(ev.note)
    step.transition(found, f"general message to {step.state.partner}: {ev.note}")


def _expect_to_supply(step: Step, ev: ExpectToSupply, found: Target) -> None:
    step.send_status(Status.ExpectToSupply, note=ev.note)
    step.transition(found, with_note("expect to supply", ev.note))


def _will_supply(step: Step, ev: WillSupply, found: Target) -> None:
    withdrawn = step.state.status is L.CONDITIONAL
    if withdrawn:
        step.set(loan_conditions=(), offered_costs=())
    step.send_status(Status.WillSupply, note=ev.note)
    step.transition(found, with_note("will supply" + (" without conditions" if withdrawn else ""), ev.note))


def _conditional(step: Step, ev: OfferConditions, found: Target) -> None:
    step.set(loan_conditions=ev.loan_conditions, offered_costs=ev.offered_costs)
    step.send_status(ev.status, note=ev.note, loan_conditions=ev.loan_conditions, offered_costs=ev.offered_costs)
    parts = []
    if ev.loan_conditions:
        parts.append("conditions: " + ", ".join(ev.loan_conditions))
    if ev.offered_costs:
        parts.append("costs: " + ", ".join(f"{amount} {currency}" for amount, currency in ev.offered_costs))
    step.transition(found, with_note(f"{ev.status.value} on conditions; " + "; ".join(parts), ev.note))


def _retry_possible(step: Step, ev: OfferRetry, found: Target) -> None:
    step.set(reason=ev.reason_retry)
    step.send_status(Status.RetryPossible, note=ev.note, reason_retry=ev.reason_retry, retry_after=ev.retry_after,
                     retry_before=ev.retry_before, loan_conditions=ev.loan_conditions,
                     offered_costs=ev.offered_costs)
    step.transition(found, with_note(f"retry possible: {ev.reason_retry}", ev.note))


def _unfilled(step: Step, ev: MarkUnfilled, found: Target) -> None:
    step.set(reason=ev.reason_unfilled)
    step.send_status(Status.Unfilled, note=ev.note, reason_unfilled=ev.reason_unfilled)
    step.transition(found, with_note("unfilled" + (f": {ev.reason_unfilled}" if ev.reason_unfilled else ""), ev.note))


def _ship(step: Step, ev: Ship, found: Target) -> None:
    step.set(due_date=ev.due_date, item_ids=ev.item_ids, shipped_at=step.at)
    step.send_status(Status.Loaned, note=ev.note, due_date=ev.due_date, item_ids=ev.item_ids,
                     delivery_costs=ev.delivery_costs, sent_via=ev.sent_via, date_sent=step.at,
                     loan_conditions=step.state.loan_conditions)
    items = f"; items {', '.join(ev.item_ids)}" if ev.item_ids else ""
    step.transition(found, with_note(f"shipped, due {ev.due_date.isoformat()}{items}", ev.note))


def _copy_completed(step: Step, ev: CompleteCopy, found: Target) -> None:
    step.set(item_ids=ev.item_ids, shipped_at=step.at)
    step.send_status(Status.CopyCompleted, note=ev.note, url=ev.url, item_ids=ev.item_ids,
                     delivery_costs=ev.delivery_costs, sent_via=ev.sent_via, date_sent=step.at)
    step.transition(found, with_note("copy delivered" + (f": {ev.url}" if ev.url else ""), ev.note))


def _answer_cancel(step: Step, ev: AnswerCancel, found: Target) -> None:
    step.clear_pending()
    if ev.answer is YesNo.Y:
        step.send_answer(ReasonForMessage.CancelResponse, YesNo.Y, Status.Cancelled, note=ev.note)
        step.transition(found, with_note("cancel accepted", ev.note))
    else:
        step.send_answer(ReasonForMessage.CancelResponse, YesNo.N, note=ev.note)
        step.transition(found, with_note("cancel refused", ev.note))


def _answer_renew(step: Step, ev: AnswerRenew, found: Target) -> None:
    step.clear_pending()
    if ev.answer is YesNo.Y:
        assert ev.due_date is not None  # AnswerRenew checks it
        if ev.due_date <= step.at:
            raise InvalidInput("due_date", "must be in the future")
        step.set(due_date=ev.due_date)
        step.send_answer(ReasonForMessage.RenewResponse, YesNo.Y, Status.Loaned, note=ev.note, due_date=ev.due_date)
        step.transition(found, with_note(f"renewed until {ev.due_date.isoformat()}", ev.note))
    else:
        step.send_answer(ReasonForMessage.RenewResponse, YesNo.N, note=ev.note, due_date=step.state.due_date)
        step.transition(found, with_note("renewal refused", ev.note))


def _mark_overdue(step: Step, ev: MarkOverdue, found: Target) -> None:
    step.send_status(Status.Overdue, note=ev.note, due_date=step.state.due_date)
    step.transition(found, with_note("overdue", ev.note))


def _recall(step: Step, ev: Recall, found: Target) -> None:
    if ev.due_date is not None:
        step.set(due_date=ev.due_date)
    step.send_status(Status.Recalled, note=ev.note, due_date=step.state.due_date)
    due = f", now due {ev.due_date.isoformat()}" if ev.due_date else ""
    step.transition(found, with_note(f"recalled{due}", ev.note))


def _end_loan(step: Step, status: Status, detail: str, note: str | None, found: Target) -> None:
    if step.state.pending is Pending.RENEW:
        step.log("the pending renew request is moot: the loan has ended", event="renew_withdrawn")
        step.clear_pending()
    step.flag(LendingAttention.LOST, False)
    step.send_status(status, note=note)
    step.transition(found, with_note(detail, note))


def _check_in(step: Step, ev: CheckIn, found: Target) -> None:
    _end_loan(step, Status.LoanCompleted, "checked in", ev.note, found)


def _complete_without_return(step: Step, ev: CompleteWithoutReturn, found: Target) -> None:
    _end_loan(step, Status.CompletedWithoutReturn, "completed without return", ev.note, found)


_HANDLERS: dict[type, Callable[[Step, Any, Target], None]] = {
    AddNote: add_note, SendMessage: _send_message, ClearFlag: acknowledge, MarkMessagesRead: mark_messages_read,
    ExpectToSupply: _expect_to_supply, WillSupply: _will_supply, OfferConditions: _conditional,
    OfferRetry: _retry_possible, MarkUnfilled: _unfilled, Ship: _ship, CompleteCopy: _copy_completed,
    AnswerCancel: _answer_cancel, AnswerRenew: _answer_renew, MarkOverdue: _mark_overdue, Recall: _recall,
    CheckIn: _check_in, CompleteWithoutReturn: _complete_without_return,
}
