"""Staff (and patron) actions on a borrowing request: what each sends and does besides its status.

The status each action leads to comes from the transition table (`check_staff`), which also
refuses actions illegal in the current status or failing a guard.
"""

from __future__ import annotations

from typing import Callable

from gateway.messages.codes import Action, RequestType

from .. import rota as rota_ops
from ..common import GeneralMessage, HistoryEntry
from ..errors import IllegalTransition, InvalidInput
from ..machine import acknowledge, add_note, mark_messages_read
from ..request_fields import SENT
from ..rota import EntryState, current_index
from ..wording import describe_changes
from .events import (
    AcceptConditions, Acknowledge, AddNote, AddPartner, CancelPartner, CancelRequest, Close, Create, Edit,
    LoanToPatron, Locate, MarkMessagesRead, MoveDown, MoveSelected, MoveUp, Receive, RejectConditions, RemovePartner,
    Renew, ResumeRequest, RetryRequest, ReturnByPatron, ReturnToPartner, SendMessage, SendStatusRequest, SkipPartner,
    StaffEvent, TreatAsCancelled,
)
from .policy import BorrowingPolicy
from .state import BorrowingState, CancelInfo, Decision, ItemLocation, ReceivedItem
from .statuses import BorrowingStatus as S
from .step import Step
from .table import INITIAL, Target, allowed_actions, check_staff


def create(event: Create, policy: BorrowingPolicy) -> Decision:
    state = BorrowingState(details=event.details, status=S.CREATED, rota=rota_ops.make_rota(event.partners))
    step = Step(state, actor=event.by, at=event.at, key=INITIAL[0], policy=policy, is_new=True)
    step.history.append(_created_entry(step))
    step.transition(INITIAL[1])
    return step.finish()


def handle(state: BorrowingState, event: StaffEvent, policy: BorrowingPolicy) -> Decision:
    found = check_staff(state, event.key)
    step = Step(state, actor=event.by, at=event.at, key=event.key, policy=policy)
    _HANDLERS[type(event)](step, event, found)
    return step.finish()


def _created_entry(step: Step) -> HistoryEntry:
    d = step.state.details
    return HistoryEntry(step.at, step.actor, "create", None, S.CREATED,
                        f"requester {d.requester}; pickup {d.pickup_location}; format {d.format}")


def _current(step: Step) -> int:
    """Index of the partner the action talks to (guards make this the normal case)."""
    i = current_index(step.state.rota)
    if i is None:
        state = step.state
        raise IllegalTransition(step.key, state.status.value, allowed_actions(state), "no current partner")
    return i


# --- general information, messages, notes ---


def _edit(step: Step, ev: Edit, found: Target) -> None:
    details = step.state.details.with_changes(ev.changes)  # (an unknown or empty field first)
    _refuse_unsendable_edit(step, ev)
    step.set(details=details)
    step.transition(found, "edited " + describe_changes(ev.changes))


def _refuse_unsendable_edit(step: Step, ev: Edit) -> None:
    """A partner that has (or is being sent) the request would never learn of a change to a field
    the request carries: ISO 18626 has no message that amends a request (docs/request-fields.md).
    Such an edit is refused; local fields may still change."""
    active = step.state.active
    sent = sorted(name for name, value in ev.changes.items()
                  if name in SENT and value != getattr(step.state.details, name))
    if active is None or active.undelivered or not sent:
        return
    state = step.state
    raise IllegalTransition(step.key, state.status.value, allowed_actions(state), (
        f"{', '.join(sent)} would not reach {active.partner}, which has (or is being sent) the request; "
        "ISO 18626 has no message to amend a request: cancel the partner to send the changed request to "
        "the next one, or write to the partner"))


def _send_message(step: Step, ev: SendMessage, found: Target) -> None:
    partner = step.state.rota[_current(step)].partner
    step.send(partner, Action.Notification, ev.note)
    step.messages.append(GeneralMessage(step.at, partner, "out", ev.note))
    step.transition(found, f"general message to {partner}: {ev.note}")


def _status_request(step: Step, ev: SendStatusRequest, found: Target) -> None:
    partner = step.state.rota[_current(step)].partner
    step.send(partner, Action.StatusRequest)
    step.transition(found, f"status requested from {partner}")


# --- rota ---


def _move(step: Step, ev: MoveUp | MoveDown | MoveSelected, found: Target) -> None:
    rota = step.state.rota
    if isinstance(ev, MoveUp):
        rota, what = rota_ops.move_up(rota, ev.partner), f"moved {ev.partner} up"
    elif isinstance(ev, MoveDown):
        rota, what = rota_ops.move_down(rota, ev.partner), f"moved {ev.partner} down"
    else:
        rota = rota_ops.move_selected(rota, ev.partners, ev.position)
        what = f"moved {', '.join(ev.partners)} to position {ev.position + 1}"
    if [e.partner for e in rota] == [e.partner for e in step.state.rota]:
        # A move that leaves the order as it was is refused, not recorded as a move.
        raise InvalidInput("partner", f"the rota would not change: {_no_move(ev)}")
    step.set(rota=rota)
    step.transition(found, f"rota: {what}")


def _no_move(ev: MoveUp | MoveDown | MoveSelected) -> str:
    if isinstance(ev, MoveUp):
        return f"{ev.partner} is already first"
    if isinstance(ev, MoveDown):
        return f"{ev.partner} is already last"
    return f"{', '.join(ev.partners)} already start at position {ev.position + 1}"


def _add_partner(step: Step, ev: AddPartner, found: Target) -> None:
    step.set(rota=rota_ops.add(step.state.rota, ev.partner, ev.position))
    step.transition(found, f"rota: added {ev.partner}")


def _remove_partner(step: Step, ev: RemovePartner, found: Target) -> None:
    entry = rota_ops.find(step.state.rota, ev.partner)
    if entry is None:
        raise InvalidInput("partner", f"{ev.partner} is not in the rota")
    if entry.state is not EntryState.PENDING:
        hint = "; cancel the partner instead" if entry.is_current else ""
        raise IllegalTransition("remove_partner", step.state.status.value, allowed_actions(step.state),
                                f"{ev.partner} is {entry.state.value}, only pending partners can be removed{hint}")
    step.set(rota=rota_ops.remove(step.state.rota, ev.partner))
    step.transition(found, f"rota: removed {ev.partner}")


def _cancel_partner(step: Step, ev: CancelPartner, found: Target) -> None:
    i = _current(step)
    partner = step.state.rota[i].partner
    step.send(partner, Action.Cancel, ev.note)
    step.set_entry(i, state=EntryState.CANCELLED, reason="cancelled by staff", awaiting_cancel_response=True)
    step.transition(found, f"partner {partner} cancelled by staff")


def _locate(step: Step, ev: Locate, found: Target) -> None:
    step.set(rota=rota_ops.merge(step.state.rota, ev.default_rota))
    step.transition(found, "manual locate")


# --- conditions and retry ---


def _accept_conditions(step: Step, ev: AcceptConditions, found: Target) -> None:
    partner = step.state.rota[_current(step)].partner
    note = "ACCEPT" + (f" {ev.note}" if ev.note else "")
    step.send(partner, Action.Notification, note)
    step.messages.append(GeneralMessage(step.at, partner, "out", note))
    step.transition(found, f"conditions of {partner} accepted")


def _reject_conditions(step: Step, ev: RejectConditions, found: Target) -> None:
    i = _current(step)
    partner = step.state.rota[i].partner
    step.send(partner, Action.Cancel, "REJECT" + (f" {ev.note}" if ev.note else ""))
    step.set_entry(i, state=EntryState.REJECTED, reason="conditions rejected", awaiting_cancel_response=True)
    step.transition(found, f"conditions of {partner} rejected")


def _retry(step: Step, ev: RetryRequest, found: Target) -> None:
    i = _current(step)
    if ev.changes:
        step.set(details=step.state.details.with_changes(ev.changes))
    step.send_request(i, RequestType.Retry, ev.note, changes=dict(ev.changes))
    step.transition(found, f"request retried with {step.state.rota[i].partner}"
                    + (f", changed {', '.join(ev.changes)}" if ev.changes else ""))


def _skip(step: Step, ev: SkipPartner, found: Target) -> None:
    i = _current(step)
    step.set_entry(i, state=EntryState.SKIPPED, reason=ev.note or "skipped after RetryPossible")
    step.transition(found, f"partner {step.state.rota[i].partner} skipped")


# --- cancel and close ---


def _cancel(step: Step, ev: CancelRequest, found: Target) -> None:
    who = "patron" if ev.by_patron else "staff"
    detail = f"cancel by {who}" + (f"; reason: {ev.reason}" if ev.reason else "") + (
        f"; note: {ev.note}" if ev.note else "") + ("; patron notified" if ev.notify_patron else "")
    step.set(cancel=CancelInfo(ev.by, ev.by_patron, ev.reason, ev.note, ev.notify_patron))
    step.transition(found, detail)


def _treat_as_cancelled(step: Step, ev: TreatAsCancelled, found: Target) -> None:
    i = _current(step)
    partner = step.state.rota[i].partner
    step.transition(found, f"no answer from {partner} to our Cancel; treated as cancelled by staff"
                    + (f": {ev.note}" if ev.note else ""))
    step.set_entry(i, awaiting_cancel_response=True)  # a late answer is still recorded


def _resume_request(step: Step, ev: ResumeRequest, found: Target) -> None:
    partner = step.state.rota[_current(step)].partner
    step.transition(found, f"no answer from {partner} to our Cancel; request resumed by staff"
                    + (f": {ev.note}" if ev.note else ""))


def _close(step: Step, ev: Close, found: Target) -> None:
    step.transition(found, "closed" + (f": {ev.note}" if ev.note else ""))


# --- the item ---


def _receive(step: Step, ev: Receive, found: Target) -> None:
    partner = step.state.rota[_current(step)].partner
    step.send(partner, Action.Received, ev.note)
    step.set(location=ItemLocation.LIBRARY)
    # Every receive is on the Received items tab: one row per barcode, or one without a barcode.
    step.received.extend(ReceivedItem(step.at, ev.by, code, ev.note) for code in ev.items or (None,))
    items = f"; items {', '.join(ev.items)}" if ev.items else ""
    step.transition(found, f"received from {partner}{items}")


def _loan_to_patron(step: Step, ev: LoanToPatron, found: Target) -> None:
    step.set(location=ItemLocation.PATRON)
    if step.state.status is S.RENEW_REQUESTED:
        step.set(previous_status=S.LOANED_TO_PATRON)
    step.transition(found, "loaned to patron")


def _return_by_patron(step: Step, ev: ReturnByPatron, found: Target) -> None:
    step.set(location=ItemLocation.LIBRARY)
    if step.state.status is S.RENEW_REQUESTED:
        step.set(previous_status=S.RETURNED_BY_PATRON)
    step.transition(found, "returned by patron")


def _return_to_partner(step: Step, ev: ReturnToPartner, found: Target) -> None:
    partner = step.state.rota[_current(step)].partner
    step.send(partner, Action.ShippedReturn, ev.note)
    step.set(location=ItemLocation.RETURNED, previous_status=None)
    step.transition(found, f"returned to {partner}")


def _renew(step: Step, ev: Renew, found: Target) -> None:
    partner = step.state.rota[_current(step)].partner
    step.send(partner, Action.Renew, ev.note)
    step.set(previous_status=step.state.status)
    step.transition(found, f"renewal requested from {partner}")


_HANDLERS: dict[type, Callable[[Step, object, Target], None]] = {
    Edit: _edit, SendMessage: _send_message, AddNote: add_note, Acknowledge: acknowledge,
    SendStatusRequest: _status_request, MoveUp: _move, MoveDown: _move, MoveSelected: _move,
    AddPartner: _add_partner, RemovePartner: _remove_partner, CancelPartner: _cancel_partner,
    Locate: _locate, AcceptConditions: _accept_conditions, RejectConditions: _reject_conditions,
    RetryRequest: _retry, SkipPartner: _skip, CancelRequest: _cancel, Close: _close, Receive: _receive,
    LoanToPatron: _loan_to_patron, ReturnByPatron: _return_by_patron, ReturnToPartner: _return_to_partner,
    Renew: _renew, MarkMessagesRead: mark_messages_read, TreatAsCancelled: _treat_as_cancelled,
    ResumeRequest: _resume_request,
}
