"""The borrowing (requesting agency) state machine: `decide(state, event, policy) -> Decision`.

Pure: no I/O, no clock, never mutates its input. An illegal input raises IllegalTransition (or
InvalidInput for a bad form field) and so changes nothing. Which status follows which is in
`table.py`; the handlers (`staff`, `incoming`, `system`) add messages, rota changes and history.
"""

from __future__ import annotations

from ..errors import IllegalTransition
from . import incoming, staff, system
from .events import Create, DeliveryFailed, Event, RequestConfirmed, StaffEvent, SupplierMessage, Tick
from .policy import DEFAULT_POLICY, BorrowingPolicy
from .state import BorrowingState, Decision
from .system import next_deadline
from .table import allowed_actions

__all__ = ["decide", "next_deadline", "allowed_actions"]


def decide(state: BorrowingState | None, event: Event, policy: BorrowingPolicy = DEFAULT_POLICY) -> Decision:
    """Apply one event. `state` is None only for `Create`, which starts a request."""
    if isinstance(event, Create):
        if state is not None:
            raise IllegalTransition("create", state.status.value, allowed_actions(state), "the request exists")
        return staff.create(event, policy)
    if state is None:
        raise IllegalTransition(_key(event), "(new)", ("create",), "no request yet")
    if isinstance(event, SupplierMessage):
        return incoming.handle(state, event, policy)
    if isinstance(event, StaffEvent):
        return staff.handle(state, event, policy)
    if isinstance(event, Tick):
        return system.tick(state, event, policy)
    if isinstance(event, RequestConfirmed):
        return system.confirmed(state, event, policy)
    if isinstance(event, DeliveryFailed):
        return system.delivery_failed(state, event, policy)
    raise TypeError(f"not a borrowing event: {event!r}")


def _key(event: object) -> str:
    return getattr(event, "key", type(event).__name__)
