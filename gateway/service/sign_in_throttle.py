"""The rules that slow down and then lock repeated failed sign-ins of one username (the
`[accounts]` settings). Pure: the state comes from the sign_in_throttles row, the time is passed in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..config import AccountSettings


@dataclass(frozen=True)
class Throttle:
    failures: int  # within the window
    window_started_at: datetime
    locked_until: datetime | None = None

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until


def after_failure(current: Throttle | None, now: datetime, settings: AccountSettings) -> Throttle:
    """The state after one more failure. A window that has passed, or a lock that has ended,
    starts the count again; the failure that reaches `max_failures` locks the username."""
    window = timedelta(seconds=settings.failure_window_seconds)
    fresh = (current is None or now - current.window_started_at >= window
             or (current.locked_until is not None and now >= current.locked_until))
    failures, started = (1, now) if fresh else (current.failures + 1, current.window_started_at)
    locked_until = None if fresh else current.locked_until
    if failures >= settings.max_failures and locked_until is None:
        locked_until = now + timedelta(seconds=settings.lockout_seconds)
    return Throttle(failures, started, locked_until)


def failure_delay(failures: int, settings: AccountSettings) -> float:
    """Seconds the caller waits before answering a failed sign-in: doubling with each failure."""
    if failures < 1:
        return 0.0
    return min(settings.failure_delay_seconds * 2 ** min(failures - 1, 32), settings.max_failure_delay_seconds)
