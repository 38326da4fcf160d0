"""System events of a lending request: the expiry timer and the outbox's delivery failures.
They never raise: they can always arrive late."""

from __future__ import annotations

from datetime import datetime

from ..common import Tick
from .events import MessageUndelivered
from .policy import DEFAULT_LENDING_POLICY, LendingPolicy, expires_at
from .state import LendingAttention, LendingDecision, LendingState
from .step import SYSTEM, Step
from .table import target


def next_lending_deadline(state: LendingState, policy: LendingPolicy = DEFAULT_LENDING_POLICY) -> datetime | None:
    """When a Tick would next change this request (the store's deadline), or None."""
    if target(state.status, "expire") is None:
        return None
    return expires_at(state.received_at, policy)


def tick(state: LendingState, event: Tick, policy: LendingPolicy) -> LendingDecision:
    """Expiry: a request still NEW when its time is up is answered for the library."""
    due = next_lending_deadline(state, policy)
    if due is None or event.now < due:
        return Step(state, actor=SYSTEM, at=event.now, key="tick").finish()  # nothing due
    step = Step(state, actor=SYSTEM, at=event.now, key="expire", policy=policy)
    step.transition(target(state.status, "expire"), f"expired, unanswered since {state.received_at.isoformat()}")
    return step.finish()


def undelivered(state: LendingState, event: MessageUndelivered) -> LendingDecision:
    step = Step(state, actor=SYSTEM, at=event.at, key=event.key)
    step.flag(LendingAttention.SEND_FAILED)
    what = " ".join(x.value for x in (event.status, event.reason) if x is not None) or "message"
    step.log(f"{what} could not be delivered to {event.partner}")
    return step.finish()
