"""The lending (supplying agency) state machine: `decide_lending(state, event, policy)`.

Pure: no I/O, no clock, never mutates its input. An illegal input raises IllegalTransition (or
InvalidInput for a bad field) and so changes nothing. Which status follows which is in
`table.py`; the handlers (`incoming`, `staff`, `system`) add the outgoing messages, history
and flags.

Outgoing reasonForMessage: the first status message for a request (or for its retry) carries
RequestResponse, later ones StatusChange; answers carry CancelResponse / RenewResponse /
StatusRequestResponse; general messages Notification (with the current ISO status).
"""

from __future__ import annotations

from gateway.messages.codes import RequestType

from ..common import StaffEvent, Tick
from ..errors import IllegalTransition
from . import incoming, staff, system
from .events import IncomingRequest, LendingEvent, MessageUndelivered, RequesterMessage
from .policy import DEFAULT_LENDING_POLICY, LendingPolicy
from .state import LendingDecision, LendingState
from .system import next_lending_deadline
from .table import INITIAL

__all__ = ["decide_lending", "next_lending_deadline"]


def decide_lending(state: LendingState | None, event: LendingEvent,
                   policy: LendingPolicy = DEFAULT_LENDING_POLICY) -> LendingDecision:
    """Apply one event. `state` is None only for an IncomingRequest, which starts a request."""
    if state is None:
        if isinstance(event, IncomingRequest) and event.request_type is not RequestType.Reminder:
            return incoming.start(event)
        key = getattr(event, "key", type(event).__name__)
        raise IllegalTransition(key, "(new)", (INITIAL[0],), "no request yet")
    if isinstance(event, IncomingRequest):
        return incoming.incoming_request(state, event)
    if isinstance(event, RequesterMessage):
        return incoming.requester_message(state, event)
    if isinstance(event, StaffEvent):
        return staff.handle(state, event)
    if isinstance(event, Tick):
        return system.tick(state, event, policy)
    if isinstance(event, MessageUndelivered):
        return system.undelivered(state, event)
    raise TypeError(f"not a lending event: {event!r}")
