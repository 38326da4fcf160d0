"""One step of the state machine being worked out, and the rules shared by all handlers.

`Step` collects the new state, outgoing messages and history of a single `decide` call; it is
local to that call, so the core stays pure. `Step.transition` carries out a table target: a
status, or one of the Outcome rules (next partner, cancel by requester, restore, defer...).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from gateway.messages.codes import Action, RequestType

from .policy import BorrowingPolicy, EndOfRota
from ..rota import EntryState, current_index, first_pending, update
from .state import (
    STATUS_BOUND, Attention, BorrowingState, Decision, GeneralMessage, HistoryEntry, Note, Outgoing, ReceivedItem,
    stale_flags,
    status_flags,
)
from .statuses import BorrowingStatus as S
from .table import Outcome, Target, target


class Step:
    def __init__(self, state: BorrowingState, *, actor: str, at: datetime, key: str, policy: BorrowingPolicy,
                 is_new: bool = False):
        self.previous = None if is_new else state
        self.state = state
        self.actor, self.at, self.key, self.policy = actor, at, key, policy
        self.outgoing: list[Outgoing] = []
        self.history: list[HistoryEntry] = []
        self.messages: list[GeneralMessage] = []
        self.notes: list[Note] = []
        self.received: list[ReceivedItem] = []

    # --- recording ---

    def set(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)

    def set_entry(self, i: int, **changes: Any) -> None:
        self.set(rota=update(self.state.rota, i, **changes))

    def log(self, detail: str = "", *, event: str | None = None) -> None:
        """History entry without a status change."""
        status = self.state.status
        self.history.append(HistoryEntry(self.at, self.actor, event or self.key, status, status, detail))

    def go(self, status: S, detail: str = "") -> None:
        self.history.append(HistoryEntry(self.at, self.actor, self.key, self.state.status, status, detail))
        self.set(status=status)

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

    def flag(self, flag: Attention, on: bool = True) -> None:
        self.set(flags=self.state.flags | {flag} if on else self.state.flags - {flag})

    def finish(self) -> Decision:
        state = self.state
        flags = (state.flags - STATUS_BOUND - stale_flags(state)) | status_flags(state)
        if flags != state.flags:
            state = replace(state, flags=flags)
        return Decision(state, self.previous, tuple(self.outgoing), tuple(self.history),
                        tuple(self.messages), tuple(self.notes), tuple(self.received))

    # --- table targets ---

    def transition(self, found: Target, detail: str = "") -> None:
        if isinstance(found, S):
            self.go(found, detail)
        elif found is Outcome.SAME:
            self.log(detail)
        elif found is Outcome.NEXT_PARTNER:
            self.go(S.REJECTED_BY_PARTNER, detail)
            self.next_partner()
        elif found is Outcome.STAFF_LEFT_PARTNER:
            self.go(S.REJECTED_BY_PARTNER, detail)
            self.next_partner(end_of_rota="review")
        elif found is Outcome.PARTNER_CANCELLED:
            if self.policy.on_partner_cancel == "next":
                self.transition(Outcome.NEXT_PARTNER, detail)
            else:
                self.go(S.CANCELED_BY_PARTNER, detail)
        elif found is Outcome.UNDELIVERED:
            self._undelivered(detail)
        elif found is Outcome.CANCELED_BY_REQUESTER:
            self._canceled_by_requester(detail)
        elif found is Outcome.RESTORE:
            cancelling = self.state.status is S.WAITING_FOR_CANCEL_RESPONSE
            what = "cancel not accepted" if cancelling else "renew failed"
            restored = self.state.previous_status or S.REQUEST_SENT
            self.go(restored, f"{detail}; {what}" if detail else what)
            self.set(previous_status=None, cancel=None if cancelling else self.state.cancel)
        elif found is Outcome.DEFER:
            self._defer(detail)
        else:  # LOCATE, CANCEL, FIRST_PARTNER belong to one staff handler each
            raise AssertionError(f"{found} is handled by its staff action")

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

    def _undelivered(self, detail: str) -> None:
        i = current_index(self.state.rota)
        assert i is not None
        nxt = first_pending(self.state.rota)
        if self.policy.on_send_failure == "next" and nxt is not None:
            self.set_entry(i, state=EntryState.SKIPPED, reason="request not delivered")
            self.log(detail)
            self.next_partner()
        else:
            self.set_entry(i, undelivered=True)
            self.flag(Attention.SEND_FAILED)
            self.go(S.READY_TO_SEND, detail)

    def _canceled_by_requester(self, detail: str) -> None:
        cancel = self.state.cancel
        i = current_index(self.state.rota)
        if i is not None:
            self.set_entry(i, state=EntryState.CANCELLED, reason=self.state.rota[i].reason or "request cancelled")
        self.set(previous_status=None)
        self.go(S.CANCELED_BY_PATRON if cancel and cancel.by_patron else S.CANCELED_BY_STAFF, detail)

    def _defer(self, detail: str) -> None:
        before = self.state.previous_status
        later = target(before, self.key) if before else None
        if isinstance(later, S) and later.phase >= before.phase:  # type: ignore[union-attr]
            self.set(previous_status=later)
            self.log(f"{detail}; {later.value} applies if the cancel is refused")
        else:
            self.log(f"{detail}; recorded while waiting for the cancel response")

