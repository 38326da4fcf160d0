"""How many audit rows each source address may cause (docs/inbound-limits.md), counted across
every gateway process on the database (docs/multi-process.md).

Unauthenticated posts (unknown agency, failed authentication) are audited, so without a bound
anyone could grow the audit trail at the speed of the network. Each source address gets
`per_window` rows per window, which starts with its first event. The window and its count are
kept in the database (table audit_budget), with wall-clock times: `admit_step` counts an event
and writes its audit row in one transaction, or only counts it once the window is spent. With processes behind a load balancer, the events of one address reach all
of them, so a count in each process's memory would let each one write the whole budget.

A process that has been told an address's window is spent remembers it (`SpentWindows`) and
counts that address's further events in memory without asking the database again, so a flood
costs at most `per_window` + one database write per window and process. Once the window is over
the process's count comes back as a `Dropped` summary, written as one row: each process reports
the drops it saw. At most `max_sources` spent addresses are remembered: the oldest is closed early
to make room (its next event asks the database again).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Connection, case, delete
from sqlalchemy.dialects import postgresql, sqlite

from ..messages.clip import clip
from ..service.audit import AuditEntry, audit_step
from ..store.models import audit_budget_t as _budget

DEFAULT_PER_WINDOW = 60
DEFAULT_WINDOW = 60.0
DEFAULT_MAX_SOURCES = 10_000
SOURCE_LENGTH = 200  # audit_budget.source


@dataclass(frozen=True)
class Dropped:
    source: str
    count: int
    per_window: int
    window: float  # seconds

    def text(self) -> str:
        return (f"{self.count} further audit entries from {self.source} were not written "
                f"(at most {self.per_window} per {self.window:g} s per address)")

    def entry(self) -> AuditEntry:
        return AuditEntry("system", "audit_dropped", self.text())


@dataclass
class _Spent:
    start: float
    dropped: int = 0


class SpentWindows:
    """This process's memory of the addresses whose current window is spent, and of how many of
    their events it dropped. No I/O: the caller writes what `check`, `spend` and `drain` return."""

    def __init__(self, per_window: int = DEFAULT_PER_WINDOW, window: float = DEFAULT_WINDOW,
                 max_sources: int = DEFAULT_MAX_SOURCES):
        if per_window < 1 or window <= 0 or max_sources < 1:
            raise ValueError("the audit budget needs per_window >= 1, window > 0, max_sources >= 1")
        self.per_window, self.window, self.max_sources = per_window, window, max_sources
        self._spent: OrderedDict[str, _Spent] = OrderedDict()  # oldest window first

    def check(self, source: str, now: float) -> tuple[bool, list[Dropped]]:
        """(whether `source`'s window is known to be spent, in which case this event is counted as
        dropped; summaries of windows that have ended)."""
        summaries = self._close(lambda w: w.start + self.window <= now)
        spent = self._spent.get(source)
        if spent is None:
            return False, summaries
        spent.dropped += 1
        return True, summaries

    def spend(self, source: str, started: float) -> list[Dropped]:
        """The shared count refused this event in the window that `started` (unix seconds): remember
        the window is spent and count the drop; summaries of windows closed early to make room."""
        summaries = []
        spent = self._spent.get(source)
        if spent is None:
            if len(self._spent) >= self.max_sources:
                summaries = self._close_oldest()
            spent = self._spent[source] = _Spent(started)
        spent.dropped += 1
        return summaries

    def drain(self) -> list[Dropped]:
        """Summaries of every open window (at shutdown)."""
        return self._close(lambda w: True)

    def _close(self, ended: Callable[[_Spent], bool]) -> list[Dropped]:
        summaries = []
        while self._spent and ended(next(iter(self._spent.values()))):
            summaries += self._close_oldest()
        return summaries

    def _close_oldest(self) -> list[Dropped]:
        source, spent = self._spent.popitem(last=False)
        return [Dropped(source, spent.dropped, self.per_window, self.window)]


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def admit_step(source: str, now: float, per_window: int, window: float, entry: AuditEntry,
               summaries: Sequence[Dropped], at: datetime) -> Callable[[Connection], tuple[bool, float]]:
    """Count an event of `source` in the shared budget and write its audit row if the window has
    room, with `summaries` in any case, at `at` (the gateway's clock); (whether it had room, when
    the window started). A window starts with the first event after the previous one ended. On
    PostgreSQL the upsert locks the address's row, so concurrent processes count one by one."""
    key = clip(source, SOURCE_LENGTH)

    def step(conn: Connection) -> tuple[bool, float]:
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        insert = dialect_insert(_budget).values(source=key, window_start=_at(now), used=1)
        open_window = _budget.c.window_start > _at(now - window)
        used, started = conn.execute(insert.on_conflict_do_update(
            index_elements=[_budget.c.source],
            set_={"used": case((open_window, _budget.c.used + 1), else_=1),
                  "window_start": case((open_window, _budget.c.window_start), else_=insert.excluded.window_start)},
        ).returning(_budget.c.used, _budget.c.window_start)).one()
        admitted = used <= per_window
        audit_step([d.entry() for d in summaries] + ([entry] if admitted else []), at)(conn)
        return admitted, started.timestamp()

    return step


def summaries_step(summaries: Sequence[Dropped], at: datetime) -> Callable[[Connection], None]:
    return audit_step([d.entry() for d in summaries], at)


def prune_step(now: float, window: float) -> Callable[[Connection], int]:
    """Delete the counts of windows that are over; how many."""
    def step(conn: Connection) -> int:
        return conn.execute(delete(_budget).where(_budget.c.window_start <= _at(now - window))).rowcount

    return step
