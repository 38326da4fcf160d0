"""One log line per kind of resource trouble per interval, however many connections hit it.

A flood of clients makes the same complaint thousands of times a second; written out each time
it fills the disk and buries everything else (one attack logged 41 MB of identical tracebacks in
10 s). Here the first occurrence is logged at once and the repeats within the interval are only
counted; the count rides on the next line of that kind.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable


class ThrottledLog:
    def __init__(self, logger: logging.Logger, interval: float, clock: Callable[[], float] = time.monotonic):
        self.logger, self.interval, self.clock = logger, interval, clock
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def report(self, kind: str, detail: str, level: int = logging.WARNING) -> None:
        """Log `kind: detail` unless a line of this kind went out less than `interval` ago."""
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] += 1
            return
        self._last[kind] = now
        repeats = self._suppressed.pop(kind, 0)
        since = f" ({repeats} more since the last report)" if repeats else ""
        self.logger.log(level, "%s: %s%s", kind, detail, since)
