"""One step of the lending machine: the kernel's Step with what a supplying agency does
(answer the borrower with a status, answer its questions, keep the ISO status it was told)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.messages.codes import ReasonForMessage, Status, YesNo

from ..common import GeneralMessage
from ..machine import Step as KernelStep
from .policy import DEFAULT_LENDING_POLICY, LendingPolicy
from .state import (
    CLEARED_BY_ACTION, STATUS_BOUND, LendingAttention, LendingDecision, LendingState, OutgoingSupplierMessage,
    status_flags,
)
from .statuses import LendingStatus as L
from .table import MACHINE

SYSTEM = "system"


class Step(KernelStep):
    table = MACHINE
    not_acknowledged = STATUS_BOUND | CLEARED_BY_ACTION
    unread = LendingAttention.MESSAGE_UNREAD

    def __init__(self, state: LendingState, *, actor: str, at: datetime, key: str, is_new: bool = False,
                 policy: LendingPolicy = DEFAULT_LENDING_POLICY):
        super().__init__(state, actor=actor, at=at, key=key, is_new=is_new)
        self.policy = policy

    def go(self, status: L, detail: str = "") -> None:
        super().go(status, detail)
        if status.iso is not None:
            self.set(iso_status=status.iso)

    def clear_pending(self) -> None:
        self.set(pending=None, pending_since=None)

    def _out(self, status: Status, reason: ReasonForMessage, **fields: Any) -> OutgoingSupplierMessage:
        message = OutgoingSupplierMessage(partner=self.state.partner, status=status, reason=reason, **fields)
        self.outgoing.append(message)
        return message

    def send_status(self, status: Status, **fields: Any) -> None:
        """A status message: RequestResponse if it is our first answer, else StatusChange."""
        reason = ReasonForMessage.StatusChange if self.state.responded else ReasonForMessage.RequestResponse
        self._out(status, reason, **fields)
        self.set(responded=True, iso_status=status)
        self.flag(LendingAttention.REMINDER, False)  # the borrower has its answer

    def send_answer(self, reason: ReasonForMessage, answer: YesNo | None, status: Status | None = None,
                    **fields: Any) -> None:
        self._out(status or self.state.iso_status, reason, answer=answer, **fields)

    def send_notification(self, note: str) -> None:
        self._out(self.state.iso_status, ReasonForMessage.Notification, note=note)
        self.messages.append(GeneralMessage(self.at, self.state.partner, "out", note, self.state.iso_status))

    def settle_flags(self, state: LendingState) -> frozenset:
        return (state.flags - STATUS_BOUND) | status_flags(state)

    def decision(self, state: LendingState) -> LendingDecision:
        return LendingDecision(state, self.previous, tuple(self.outgoing), tuple(self.history),
                               tuple(self.messages), tuple(self.notes))


def with_note(detail: str, note: str | None) -> str:
    return f"{detail}; note: {note}" if note else detail
