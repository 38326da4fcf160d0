"""Timers run once: of several processes on one PostgreSQL database only the timer leader ticks,
another takes over soon after the leader goes, and two never tick at the same time. On SQLite the
one process is always the leader.

Two schedulers with their own engines stand for two processes (two engines: two sessions)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.db import is_sqlite, make_engine
from gateway.transport.scheduler import Scheduler
from gateway.transport.timer_leader import LOCK_CLASS, SoleLeader, timer_leadership

INTERVAL, RETRY = 0.05, 0.2
TAKEOVER = RETRY * 5 + 1.0  # a generous bound on a takeover: retry interval plus a slow machine's lag


@dataclass
class Process:
    """One stand-in gateway process: its engine and a scheduler whose tick records when it ran."""

    name: str
    engine: AsyncEngine
    runs: list[tuple[float, float]] = field(default_factory=list)
    scheduler: Scheduler | None = None

    async def tick(self) -> None:
        started = time.monotonic()
        await asyncio.sleep(0.01)
        self.runs.append((started, time.monotonic()))

    async def start(self) -> None:
        self.scheduler = Scheduler([self.tick], INTERVAL, leadership=timer_leadership(self.engine),
                                   retry_interval=RETRY)
        await self.scheduler.start()

    async def stop(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.close()


def postgresql_only(db_url: str) -> None:
    if is_sqlite(db_url):
        pytest.skip("one SQLite file serves one process: there is no leader to choose")


@pytest.fixture
async def processes(db_url: str) -> AsyncIterator[list[Process]]:
    made = [Process(name, make_engine(db_url)) for name in ("a", "b")]
    try:
        yield made
    finally:
        for process in made:
            await process.stop()
            await process.engine.dispose()


async def wait_for(condition, timeout: float) -> float:
    """Seconds until `condition()` held; fails after `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "condition not reached in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def leader_of(processes: list[Process]) -> tuple[Process, Process]:
    leaders = [p for p in processes if p.scheduler is not None and p.scheduler.is_leader]
    assert len(leaders) == 1, [p.name for p in leaders]
    return leaders[0], next(p for p in processes if p is not leaders[0])


def assert_never_both(processes: list[Process]) -> None:
    """No tick of one process overlaps in time with a tick of the other."""
    a, b = processes
    for start_a, end_a in a.runs:
        for start_b, end_b in b.runs:
            assert end_a <= start_b or end_b <= start_a, "both processes ticked at the same time"


async def start_both(processes: list[Process]) -> tuple[Process, Process]:
    for process in processes:
        await process.start()
    await wait_for(lambda: any(p.runs for p in processes), TAKEOVER)
    await asyncio.sleep(RETRY * 3)  # the other has tried (and failed) to lead a few times meanwhile
    return leader_of(processes)


async def test_sqlite_process_is_always_leader(db_url):
    if not is_sqlite(db_url):
        pytest.skip("SQLite only: on PostgreSQL the leader is chosen by a lock")
    engine = make_engine(db_url)
    try:
        leadership = timer_leadership(engine)
        assert isinstance(leadership, SoleLeader) and leadership.is_leader
        process = Process("only", engine)
        await process.start()
        await wait_for(lambda: len(process.runs) >= 3, TAKEOVER)
        assert process.scheduler is not None and process.scheduler.is_leader
        await process.stop()
    finally:
        await engine.dispose()


async def test_only_one_process_ticks(db_url, processes):
    postgresql_only(db_url)
    leader, other = await start_both(processes)
    assert len(leader.runs) >= 3 and other.runs == []


async def test_the_other_takes_over_when_the_leader_closes(db_url, processes):
    postgresql_only(db_url)
    leader, other = await start_both(processes)
    await leader.stop()
    assert await wait_for(lambda: bool(other.runs), TAKEOVER) < TAKEOVER
    assert other.scheduler is not None and other.scheduler.is_leader
    assert_never_both(processes)


async def test_the_other_takes_over_when_the_lock_connection_is_killed(db_url, processes):
    postgresql_only(db_url)
    leader, other = await start_both(processes)
    async with processes[0].engine.connect() as conn:
        killed = (await conn.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND classid = :cls"
            " AND objid = (hashtext(current_schema())::bigint & 4294967295)::oid AND granted"
        ), {"cls": LOCK_CLASS})).scalars().all()
    assert killed == [True]
    await wait_for(lambda: bool(other.runs), TAKEOVER)
    assert leader.scheduler is not None and not leader.scheduler.is_leader
    ticks_of_old_leader = len(leader.runs)
    await asyncio.sleep(RETRY * 3)
    # The old leader stays out: the lock is the other's now.
    assert len(leader.runs) == ticks_of_old_leader and leader_of(processes) == (other, leader)
    assert_never_both(processes)


async def test_leadership_moves_back_and_forth_without_overlap(db_url, processes):
    postgresql_only(db_url)
    leader, other = await start_both(processes)
    for _ in range(3):
        await leader.stop()
        await wait_for(lambda: other.scheduler is not None and other.scheduler.is_leader, TAKEOVER)
        await leader.start()  # the former leader comes back as a follower
        await asyncio.sleep(RETRY * 2)
        assert leader_of(processes) == (other, leader)
        leader, other = other, leader
    assert_never_both(processes)
