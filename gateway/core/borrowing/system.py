"""System events: timer ticks and the outbox's delivery results.

They never raise: they can always arrive late (a confirmation after the partner already
answered, a failure for a partner we left). What the table lacks is recorded and ignored.
"""

from __future__ import annotations

from datetime import datetime

from gateway.messages.codes import Action

from ..rota import EntryState, RotaEntry, current_index, find, index_of
from .events import DeliveryFailed, RequestConfirmed, Tick
from .policy import BorrowingPolicy
from .state import Attention, BorrowingState, Decision
from .statuses import BorrowingStatus as S
from .step import Step
from .table import target, timer_key

SYSTEM = "system"


def tick(state: BorrowingState, event: Tick, policy: BorrowingPolicy) -> Decision:
    """Per-partner deadline: StatusRequest when it passes, Cancel and move on after grace."""
    due = next_deadline(state, policy)
    if due is None or event.now < due:
        return Step(state, actor=SYSTEM, at=event.now, key="tick", policy=policy).finish()  # nothing due
    i = current_index(state.rota)
    assert i is not None
    entry = state.rota[i]
    key = timer_key(state, entry)
    step = Step(state, actor=SYSTEM, at=event.now, key=key, policy=policy)
    found = target(state.status, key)
    assert found is not None
    if key == "cancel_overdue":
        step.flag(Attention.CANCEL_OVERDUE)
        step.transition(found, f"no answer from {entry.partner} to our Cancel by {due.isoformat()}; "
                        "staff can treat the request as cancelled or resume it")
    elif key == "no_answer":
        step.send(entry.partner, Action.StatusRequest)
        step.set_entry(i, status_requested_at=event.now)
        step.transition(found, f"no answer from {entry.partner} since {due - policy.deadline_for(entry.partner)}; "
                        "status requested")
    else:
        step.send(entry.partner, Action.Cancel, "No answer received")
        step.set_entry(i, state=EntryState.CANCELLED, reason="no answer", awaiting_cancel_response=True)
        step.transition(found, f"still no answer from {entry.partner} after the grace period; cancelled")
    return step.finish()


def next_deadline(state: BorrowingState, policy: BorrowingPolicy) -> datetime | None:
    """When a Tick would next change this request (the store's `deadline_at`), or None."""
    i = current_index(state.rota)
    if i is None:
        return None
    entry = state.rota[i]
    if state.status is S.WAITING_FOR_CANCEL_RESPONSE:
        return _cancel_deadline(state, entry, policy)
    if entry.state is not EntryState.ACTIVE or entry.answered_at or entry.sent_at is None:
        return None  # answered (a CONDITIONAL partner has answered: it never times out)
    if target(state.status, timer_key(state, entry)) is None:
        return None  # e.g. the request is not confirmed yet: the outbox is still on it
    if entry.status_requested_at is None:
        return entry.sent_at + policy.deadline_for(entry.partner)
    return entry.status_requested_at + policy.grace


def _cancel_deadline(state: BorrowingState, entry: RotaEntry, policy: BorrowingPolicy) -> datetime | None:
    """The partner's answer to our Cancel is due within its response deadline; once that has
    passed (and the request is flagged) no timer runs until staff settle it."""
    if Attention.CANCEL_OVERDUE in state.flags:
        return None
    sent = (state.cancel.sent_at if state.cancel else None) or entry.sent_at  # older states: the request
    return None if sent is None else sent + policy.deadline_for(entry.partner)


def confirmed(state: BorrowingState, event: RequestConfirmed, policy: BorrowingPolicy) -> Decision:
    step = Step(state, actor=event.partner, at=event.now, key="request_confirmed", policy=policy)
    active = state.active
    if active is None or active.partner != event.partner:
        step.log(f"confirmation from {event.partner} ignored: not the active partner")
        return step.finish()
    step.set_entry(index_of(state.rota, event.partner), confirmed_at=event.now, undelivered=False)
    step.flag(Attention.SEND_FAILED, False)
    found = target(state.status, "request_confirmed")
    detail = f"request confirmed by {event.partner}"
    step.transition(found, detail) if found else step.log(detail + " (after its answer)")
    return step.finish()


def delivery_failed(state: BorrowingState, event: DeliveryFailed, policy: BorrowingPolicy) -> Decision:
    key = event.key
    step = Step(state, actor=SYSTEM, at=event.at, key=key, policy=policy)
    what = "request" if event.kind == "request" else (event.action.value if event.action else "message")
    detail = f"{what} could not be delivered to {event.partner}"
    i = current_index(state.rota)
    if i is None or state.rota[i].partner != event.partner:
        entry = find(state.rota, event.partner)
        if entry is not None and entry.awaiting_cancel_response and event.action is Action.Cancel:
            step.set_entry(index_of(state.rota, event.partner), awaiting_cancel_response=False)
        if event.kind != "request":  # a partner we left may still act on the request
            step.flag(Attention.SEND_FAILED)
        step.log(detail + " (not the active partner)")
        return step.finish()
    found = target(state.status, key)
    if found is None:
        step.flag(Attention.SEND_FAILED)
        step.log(detail)
        return step.finish()
    if key != "request_undelivered":
        step.flag(Attention.SEND_FAILED)
    step.transition(found, detail)
    return step.finish()
