"""Errors raised by the pure core. Raising changes nothing: `decide` never mutates its input.

The service layer maps IllegalTransition to ISO `UnrecognisedDataValue` for a partner and to
HTTP 409 for staff; InvalidInput (a bad field in a staff form) to HTTP 400 with its `field`.
"""

from __future__ import annotations

from typing import Callable, Iterable


class BorrowingError(Exception):
    """Base of the core's errors."""


class IllegalTransition(BorrowingError):
    def __init__(self, event: str, status: str, allowed: Iterable[str], reason: str | None = None):
        self.event = event
        self.status = status
        self.allowed = tuple(allowed)
        self.reason = reason
        super().__init__(self.describe())

    def describe(self, name: Callable[[str], str] = str) -> str:
        """The refusal as text, each event key shown as `name(key)` (the API's spelling, say)."""
        why = f" ({self.reason})" if self.reason else ""
        allowed_text = ", ".join(dict.fromkeys(name(k) for k in self.allowed)) or "nothing"
        return f"{name(self.event)} is not allowed in status {self.status}{why}; allowed: {allowed_text}"


class InvalidInput(BorrowingError):
    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")
