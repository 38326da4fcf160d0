"""Incoming supplyingAgencyMessages from the partners of a borrowing request.

Order of checks: the sender must be the current rota partner (else only a Notification, or the
answer to a Cancel we sent when leaving it, is recorded); a message that would change the request
but was written before the partner's latest message that did is stale (recorded, no error); then
the table decides; a key the table lacks is either out of order (recorded, no error) or illegal
(refused). See docs/message-order-and-duplicates.md.
"""

from __future__ import annotations

from gateway.messages.codes import ReasonForMessage, Status, YesNo

from ..common import GeneralMessage
from ..errors import IllegalTransition
from ..rota import EntryState, RotaEntry, current_index, find, index_of
from .events import SupplierMessage
from .policy import BorrowingPolicy
from .state import Attention, BorrowingState, Decision, ItemLocation
from .step import Step
from .table import Outcome, partner_target, target

# Keys of a Notification: its note goes to the general messages.
_NOTIFICATIONS = ("Notification", "ConditionsAssumedAgreed")

# Keys that end the partner's part: its entry's new state and the reason if it gave none.
_LEAVES_PARTNER = {
    "Unfilled": (EntryState.REJECTED, "unfilled"),
    "Cancelled": (EntryState.CANCELLED, "cancelled by partner"),
    "CancelResponse:Y": (EntryState.CANCELLED, "cancel accepted"),
}


def handle(state: BorrowingState, msg: SupplierMessage, policy: BorrowingPolicy) -> Decision:
    step = Step(state, actor=msg.partner, at=msg.received_at, key=msg.key, policy=policy)
    i = current_index(state.rota)
    if i is None or state.rota[i].partner != msg.partner:
        return _from_other_partner(step, msg)

    key, status, entry = msg.key, state.status, state.rota[i]
    if target(status, key) is not Outcome.SAME and is_stale(entry, msg):
        return _stale(step, msg, entry)
    if msg.is_status_response:  # always note what the partner says
        step.set_entry(i, last_status=msg.status or entry.last_status,
                       answered_at=entry.answered_at or msg.received_at)
    found = partner_target(status, key, status_response=msg.is_status_response)
    if found is None:
        step.log(f"{describe(msg)}; out of order, ignored", event="out_of_order")
        return step.finish()

    if found is not Outcome.SAME and msg.timestamp is not None:
        step.set_entry(i, status_timestamp=msg.timestamp)  # not stale: no earlier than the last one
    if key in _NOTIFICATIONS:
        _record_message(step, msg)
    else:
        _update_entry(step, i, msg)
        _apply_effects(step, msg)
    step.transition(found, describe(msg))
    return step.finish()


def is_stale(entry: RotaEntry, msg: SupplierMessage) -> bool:
    """Written (by the partner's clock) before the partner's latest message that changed the
    request. Only the partner's own timestamps are compared, so skew between its clock and ours
    does not matter; equal timestamps are not stale (two messages in the same second)."""
    return (msg.timestamp is not None and entry.status_timestamp is not None
            and msg.timestamp < entry.status_timestamp)


def _stale(step: Step, msg: SupplierMessage, entry: RotaEntry) -> Decision:
    if msg.key in _NOTIFICATIONS:
        _record_message(step, msg)  # the note is still news; only its status effect is stale
    assert msg.timestamp is not None and entry.status_timestamp is not None
    step.log(f"{describe(msg)}; stale: written {msg.timestamp.isoformat()}, before the partner's message of "
             f"{entry.status_timestamp.isoformat()} that set the request's status; no status change",
             event="stale")
    return step.finish()


def _from_other_partner(step: Step, msg: SupplierMessage) -> Decision:
    state = step.state
    entry = find(state.rota, msg.partner)
    if msg.key in _NOTIFICATIONS:
        _record_message(step, msg)
        step.log(f"{describe(msg)}; not the active partner, no status change")
        return step.finish()
    answers_our_cancel = msg.reason is ReasonForMessage.CancelResponse or msg.status is Status.Cancelled
    if entry is not None and entry.awaiting_cancel_response and answers_our_cancel:
        i = index_of(state.rota, msg.partner)
        refused = msg.key == "CancelResponse:N"
        step.set_entry(i, awaiting_cancel_response=False, answer=YesNo.N if refused else YesNo.Y,
                       last_status=msg.status or entry.last_status)
        if refused:
            step.flag(Attention.CANCEL_REFUSED)
        outcome = "refused, the partner may still ship" if refused else "accepted"
        step.log(f"{describe(msg)}; answer to our Cancel: {outcome}")
        return step.finish()
    raise IllegalTransition(msg.key, state.status.value, ("Notification",), "not the active partner")


def _record_message(step: Step, msg: SupplierMessage) -> None:
    if msg.note:  # a general message from a partner waits for staff to read it
        step.messages.append(GeneralMessage(msg.received_at, msg.partner, "in", msg.note, msg.status))
        step.flag(Attention.MESSAGE_UNREAD)


def _update_entry(step: Step, i: int, msg: SupplierMessage) -> None:
    entry = step.state.rota[i]
    changes: dict[str, object] = {"answered_at": entry.answered_at or msg.received_at}
    if msg.status is not None:
        changes["last_status"] = msg.status
    if msg.answer is not None:
        changes["answer"] = msg.answer
    if msg.reason_unfilled or msg.reason_retry:
        changes["reason"] = msg.reason_unfilled or msg.reason_retry
    if msg.loan_conditions or msg.offered_costs:
        changes.update(loan_conditions=msg.loan_conditions, offered_costs=msg.offered_costs)
    if msg.key == "RetryPossible":
        changes.update(retry_after=msg.retry_after, retry_before=msg.retry_before)
    if msg.key in ("Loaned", "CopyCompleted", "LoanCompleted", "CompletedWithoutReturn"):
        changes["state"] = EntryState.SUPPLIED
    if msg.key in _LEAVES_PARTNER:
        changes["state"], default_reason = _LEAVES_PARTNER[msg.key]
        changes.setdefault("reason", default_reason)
    step.set_entry(i, **changes)


def _apply_effects(step: Step, msg: SupplierMessage) -> None:
    """What a message does to the request besides its status."""
    key = msg.key
    if key == "Loaned":
        step.set(supply="loan")
    elif key == "CopyCompleted":
        step.set(supply="copy")
    elif key in ("LoanCompleted", "CompletedWithoutReturn") and step.state.supply == "loan":
        step.set(location=ItemLocation.RETURNED)
    if key.startswith("RenewResponse"):
        step.set(previous_status=None)  # the renew is answered; nothing to restore any more
    if msg.due_date is not None and key in ("Loaned", "Overdue", "Recalled", "RenewResponse:Y"):
        step.set(due_date=msg.due_date)


def describe(msg: SupplierMessage) -> str:
    """One line for the history tab."""
    parts = [f"{msg.status.value if msg.status else 'no status'} ({msg.reason.value})"]
    if msg.answer:
        parts.append(f"answer {msg.answer.value}")
    if msg.reason_unfilled:
        parts.append(f"reason unfilled: {msg.reason_unfilled}")
    if msg.reason_retry:
        parts.append(f"reason retry: {msg.reason_retry}")
    if msg.loan_conditions:
        parts.append("conditions: " + ", ".join(msg.loan_conditions))
    if msg.offered_costs:
        parts.append("costs: " + ", ".join(f"{amount} {currency}" for amount, currency in msg.offered_costs))
    if msg.due_date:
        parts.append(f"due {msg.due_date.isoformat()}")
    if msg.conditions_assumed_agreed:
        parts.append("the supplier takes its conditions as agreed")
    if msg.note:
        parts.append(f"note: {msg.note}")
    return "; ".join(parts)
