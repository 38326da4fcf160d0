"""The borrower's messages on a lending request: its `request` (New starts one; Retry and
Reminder are rows of the table) and its requestingAgencyMessages.

Order of checks: the sender must be the request's borrower; a message that would change the
request but was written before the borrower's latest message that did is stale (recorded, no
error); then the table decides; a key the table lacks is late (recorded) or illegal (refused).
See docs/message-order-and-duplicates.md.
"""

from __future__ import annotations

from typing import Callable

from gateway.messages.codes import Action, RequestType, Status

from ..common import GeneralMessage, HistoryEntry
from ..errors import IllegalTransition
from .events import IncomingRequest, RequesterMessage
from .state import LendingAttention, LendingDecision, LendingState, Pending
from .statuses import LendingStatus as L
from .step import Step, with_note
from .table import INITIAL, LendingOutcome as O, borrower_keys, borrower_target, is_late, target


def start(event: IncomingRequest) -> LendingDecision:
    state = LendingState(partner=event.partner, details=event.details, status=L.NEW, received_at=event.received_at)
    step = Step(state, actor=event.partner, at=event.received_at, key=INITIAL[0], is_new=True)
    d = event.details
    what = f"{d.service_type.value} request" + (f" for {d.title!r}" if d.title else "")
    if event.request_type is RequestType.Retry:
        what += " (a retry of a request we do not know)"
    detail = f"{what} from {event.partner}"
    step.history.append(HistoryEntry(step.at, step.actor, INITIAL[0], None, L.NEW, detail))
    return step.finish()


def incoming_request(state: LendingState, event: IncomingRequest) -> LendingDecision:
    _check_partner(state, event.key, event.partner)
    key = event.key
    if key == INITIAL[0]:
        raise IllegalTransition(key, state.status.value, borrower_keys(state.status), "the request exists")
    step = Step(state, actor=event.partner, at=event.received_at, key=key)
    found = target(state.status, key)
    if found is None:
        return _late_or_refused(step, state, key, f"request of type {key}")
    if key == "Retry":
        changed = event.details.changed_fields(state.details)
        step.set(details=event.details, received_at=event.received_at, responded=False, reason=None,
                 loan_conditions=(), offered_costs=(), iso_status=Status.RequestReceived)
        step.transition(found, "retry received" + (f", changed {', '.join(changed)}" if changed else ", unchanged"))
    else:  # Reminder
        step.flag(LendingAttention.REMINDER)
        step.transition(found, "reminder received")
    return step.finish()


def _check_partner(state: LendingState, key: str, partner: str) -> None:
    if partner != state.partner:
        raise IllegalTransition(key, state.status.value, (), f"{partner} is not the requesting agency of this request")


def _late_or_refused(step: Step, state: LendingState, key: str, what: str) -> LendingDecision:
    if is_late(state.status):
        step.log(f"{what}; the request has ended, recorded and ignored", event="late")
        return step.finish()
    raise IllegalTransition(key, state.status.value, borrower_keys(state.status))


# --- the borrower's messages -----------------------------------------------------------------


def requester_message(state: LendingState, msg: RequesterMessage) -> LendingDecision:
    _check_partner(state, msg.key, msg.partner)
    key = msg.key
    step = Step(state, actor=msg.partner, at=msg.received_at, key=key)
    found = borrower_target(state.status, key)
    changes = found not in (O.SAME, O.ANSWER_STATUS)  # None too: it would be refused or late
    if changes and _is_stale(state, msg):
        return _stale(step, state, msg)
    if found is None:
        return _late_or_refused(step, state, key, with_note(msg.action.value, msg.note))
    if changes and msg.timestamp is not None:
        step.set(borrower_timestamp=msg.timestamp)  # not stale: no earlier than the last one
    if msg.action is Action.Notification:
        if msg.note:  # a general message from the borrower waits for staff to read it
            step.messages.append(GeneralMessage(msg.received_at, msg.partner, "in", msg.note))
            step.flag(LendingAttention.MESSAGE_UNREAD)
        detail = with_note("general message", msg.note)
        if found is L.WILL_SUPPLY:
            detail = with_note("the borrower accepted the conditions", msg.note)
        elif found is L.UNFILLED:
            detail = with_note("the borrower rejected the conditions", msg.note)
            step.set(reason="conditions rejected by the borrower")
        step.transition(found, detail)
        return step.finish()
    _BORROWER_EFFECTS.get(msg.action.value, _nothing)(step, msg)
    step.transition(found, with_note(msg.action.value, msg.note))
    return step.finish()


def _is_stale(state: LendingState, msg: RequesterMessage) -> bool:
    """Written (by the borrower's clock) before its latest message that changed the request.
    Only the borrower's own timestamps are compared, so clock skew does not matter; equal
    timestamps are not stale."""
    return (msg.timestamp is not None and state.borrower_timestamp is not None
            and msg.timestamp < state.borrower_timestamp)


def _stale(step: Step, state: LendingState, msg: RequesterMessage) -> LendingDecision:
    if msg.action is Action.Notification and msg.note:
        step.messages.append(GeneralMessage(msg.received_at, msg.partner, "in", msg.note))
    assert msg.timestamp is not None and state.borrower_timestamp is not None
    step.log(with_note(f"{msg.action.value}; stale: written {msg.timestamp.isoformat()}, before the borrower's "
                   f"message of {state.borrower_timestamp.isoformat()} that changed the request; ignored",
                   msg.note), event="stale")
    return step.finish()


def _nothing(step: Step, msg: RequesterMessage) -> None:
    return None


def _received(step: Step, msg: RequesterMessage) -> None:
    step.set(borrower_received_at=step.state.borrower_received_at or msg.received_at)


def _shipped_return(step: Step, msg: RequesterMessage) -> None:
    if step.state.pending is Pending.RENEW:
        step.log("the pending renew request is moot: the item is on its way back", event="renew_withdrawn")
        step.clear_pending()
    step.set(return_shipped_at=msg.received_at)


def _lost(step: Step, msg: RequesterMessage) -> None:
    step.flag(LendingAttention.LOST)


_BORROWER_EFFECTS: dict[str, Callable[[Step, RequesterMessage], None]] = {
    "Received": _received, "ShippedReturn": _shipped_return, "Lost": _lost,
}
