"""One step of the borrowing machine: the kernel's Step with what a requesting agency does
(send to a partner, start the request at a rota entry, move on along the rota)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.messages.codes import Action, RequestType

from ..machine import Step as KernelStep
from ..rota import EntryState, current_index, first_pending, update
from .policy import BorrowingPolicy, EndOfRota
from .state import (
    CLEARED_BY_ACTION, STATUS_BOUND, Attention, BorrowingState, Decision, Outgoing, ReceivedItem, stale_flags,
    status_flags,
)
from .statuses import BorrowingStatus as S
from .table import MACHINE


class Step(KernelStep):
    table = MACHINE
    not_acknowledged = STATUS_BOUND | CLEARED_BY_ACTION
    unread = Attention.MESSAGE_UNREAD

    def __init__(self, state: BorrowingState, *, actor: str, at: datetime, key: str, policy: BorrowingPolicy,
                 is_new: bool = False):
        super().__init__(state, actor=actor, at=at, key=key, is_new=is_new)
        self.policy = policy
        self.received: list[ReceivedItem] = []

    def set_entry(self, i: int, **changes: Any) -> None:
        self.set(rota=update(self.state.rota, i, **changes))

    def send(self, partner: str, action: Action, note: str | None = None, **extra: Any) -> None:
        self.outgoing.append(Outgoing(partner, "requestingAgencyMessage", action, note, None, extra))

    def send_request(self, i: int, request_type: RequestType = RequestType.New, note: str | None = None,
                     **extra: Any) -> None:
        """(Re)start the partner at rota index i: it becomes ACTIVE and gets a `request`."""
        entry = self.state.rota[i]
        self.set_entry(
            i, state=EntryState.ACTIVE, sent_at=self.at, confirmed_at=None, answered_at=None,
            status_requested_at=None, undelivered=False,
        )
        self.outgoing.append(Outgoing(entry.partner, "request", None, note, request_type, extra))

    def next_partner(self, end_of_rota: EndOfRota | None = None) -> None:
        """The current partner is out: send to the first pending one, or end the rota (as the
        policy says for partners' answers, unless `end_of_rota` overrides it)."""
        assert current_index(self.state.rota) is None, "leave the current entry first"
        i = first_pending(self.state.rota)
        if i is not None:
            self.send_request(i)
            self.log(f"request sent to next partner {self.state.rota[i].partner}", event="next_partner")
        elif (end_of_rota or self.policy.end_of_rota) == "expire":
            self.go(S.EXPIRED, "no partner left in the rota")
        else:
            self.log("no partner left in the rota; kept for review", event="end_of_rota")

    def settle_flags(self, state: BorrowingState) -> frozenset:
        return (state.flags - STATUS_BOUND - stale_flags(state)) | status_flags(state)

    def decision(self, state: BorrowingState) -> Decision:
        return Decision(state, self.previous, tuple(self.outgoing), tuple(self.history),
                        tuple(self.messages), tuple(self.notes), tuple(self.received))
