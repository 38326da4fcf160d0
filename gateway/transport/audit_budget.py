"""How many audit rows each source address may cause (docs/inbound-limits.md).

Unauthenticated posts (unknown agency, failed authentication) are audited, so without a bound
anyone could grow the audit trail at the speed of the network. Each source address gets
`per_window` rows per `window` seconds; further events are counted, not written, and once the
window is over the count comes back as a `Dropped` summary, to be written as one row instead.
At most `max_sources` addresses are tracked: the oldest window is closed early to make room.
No I/O here: the caller writes what `admit` and `drain` return.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

DEFAULT_PER_WINDOW = 60
DEFAULT_WINDOW = 60.0
DEFAULT_MAX_SOURCES = 10_000


@dataclass(frozen=True)
class Dropped:
    source: str
    count: int
    per_window: int
    window: float  # seconds

    def text(self) -> str:
        return (f"{self.count} further audit entries from {self.source} were not written "
                f"(at most {self.per_window} per {self.window:g} s per address)")


@dataclass
class _Window:
    start: float
    used: int = 0
    dropped: int = 0


class AuditBudget:
    def __init__(self, per_window: int = DEFAULT_PER_WINDOW, window: float = DEFAULT_WINDOW,
                 max_sources: int = DEFAULT_MAX_SOURCES):
        if per_window < 1 or window <= 0 or max_sources < 1:
            raise ValueError("the audit budget needs per_window >= 1, window > 0, max_sources >= 1")
        self.per_window, self.window, self.max_sources = per_window, window, max_sources
        self._windows: OrderedDict[str, _Window] = OrderedDict()  # oldest window first

    def admit(self, source: str, now: float) -> tuple[bool, list[Dropped]]:
        """(write this event's row?, summaries of windows that ended with drops)."""
        summaries = self._close(lambda w: w.start + self.window <= now)
        current = self._windows.get(source)
        if current is None:
            if len(self._windows) >= self.max_sources:
                summaries += self._close_oldest()
            current = self._windows[source] = _Window(now)
        if current.used < self.per_window:
            current.used += 1
            return True, summaries
        current.dropped += 1
        return False, summaries

    def drain(self) -> list[Dropped]:
        """Summaries of every open window (at shutdown)."""
        return self._close(lambda w: True)

    def _close(self, ended) -> list[Dropped]:
        summaries = []
        while self._windows:
            source, window = next(iter(self._windows.items()))
            if not ended(window):
                break
            summaries += self._close_oldest()
        return summaries

    def _close_oldest(self) -> list[Dropped]:
        source, window = self._windows.popitem(last=False)
        return [Dropped(source, window.dropped, self.per_window, self.window)] if window.dropped else []
