"""The per-address budget of audit rows (gateway/transport/audit_budget.py): this process's memory
of spent windows, with a clock in hand, and the count shared by every process in the database."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from gateway.service.audit import AuditEntry
from gateway.service.writer import Writer
from gateway.store.db import make_engine
from gateway.store.models import audit_budget_t, history_t
from gateway.transport.audit_budget import Dropped, SpentWindows, admit_step, prune_step

AT = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)


def test_a_spent_window_is_remembered_and_its_drops_are_summarised_once_it_ends():
    spent = SpentWindows(per_window=2, window=60.0)
    assert spent.check("10.0.0.1", 0) == (False, [])  # not known to be spent: ask the database
    assert spent.spend("10.0.0.1", started=0) == []  # the database said no: one drop
    assert [spent.check("10.0.0.1", t)[0] for t in (1, 2)] == [True, True]  # two more, counted here
    assert spent.check("10.0.0.2", 3) == (False, [])  # another address has its own budget
    # The window is over: its drops come back as one summary, and the address asks the database again.
    known, summaries = spent.check("10.0.0.1", 61)
    assert not known and summaries == [Dropped("10.0.0.1", 3, 2, 60.0)]
    assert "3 further audit entries from 10.0.0.1" in summaries[0].text()
    assert spent.drain() == []


def test_remembered_addresses_are_bounded_and_an_evicted_window_still_reports_its_drops():
    spent = SpentWindows(per_window=1, window=60.0, max_sources=2)
    spent.spend("a", 0)
    spent.spend("b", 1)
    assert spent.spend("c", 2) == [Dropped("a", 1, 1, 60.0)]  # "a" is closed early to make room
    spent.check("c", 3)
    assert spent.drain() == [Dropped("b", 1, 1, 60.0), Dropped("c", 2, 1, 60.0)]


def test_a_budget_needs_sensible_settings():
    with pytest.raises(ValueError):
        SpentWindows(per_window=0)


async def test_two_processes_share_one_budget_per_address(engine, db_url):
    """Two writers on two engines stand for two processes: together they write `per_window` rows
    per address, not `per_window` each; a new window starts afresh; old counts are pruned."""
    other = make_engine(db_url)
    writers = [Writer(engine), Writer(other)]
    try:
        async def event(writer: Writer, source: str, now: float) -> tuple[bool, float]:
            return await writer.run(admit_step(source, now, 3, 60.0, AuditEntry("ISIL:X", "auth_failed", "no"), [], AT))

        results = [await event(writers[i % 2], "192.0.2.1", 1000.0 + i) for i in range(8)]
        assert [admitted for admitted, _ in results] == [True] * 3 + [False] * 5
        assert {started for _, started in results} == {1000.0}  # the window began with the first event
        assert (await event(writers[1], "192.0.2.2", 1010.0))[0]  # another address
        assert await event(writers[0], "192.0.2.1", 1061.0) == (True, 1061.0)  # the next window
        async with engine.connect() as conn:
            rows = (await conn.execute(select(history_t.c.event))).scalars().all()
        assert rows == ["auth_failed"] * 5
        assert await writers[0].run(prune_step(1075.0, 60.0)) == 1  # 192.0.2.2's window is over
        async with engine.connect() as conn:
            left = (await conn.execute(select(audit_budget_t.c.source))).scalars().all()
        assert left == ["192.0.2.1"]
    finally:
        for writer in writers:
            await writer.close()
        await other.dispose()
