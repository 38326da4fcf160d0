"""Timers run once: of several processes on one PostgreSQL database only the timer leader ticks,
another takes over soon after the leader goes, and two never tick at the same time. On SQLite the
one process is always the leader.

Two schedulers with their own engines stand for two processes (two engines: two sessions); the
last test runs two real `gateway serve` processes and kills the leader with SIGKILL."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.db import is_sqlite, make_engine, migrate_async
from gateway.store.models import lending_requests_t, outbox_t
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


def test_retry_interval_is_configured():
    from gateway.config import parse_config

    assert parse_config({}, env={}).leader_retry_seconds == 5.0
    assert parse_config({"gateway": {"leader_retry_seconds": 0.5}}, env={}).leader_retry_seconds == 0.5


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


# --- two real `gateway serve` processes on one database -----------------------------------------

SERVE_OURS, SERVE_BORROWER = "ISIL:DK-LEAD", "ISIL:US-LEAD"
TAKEN = "timer leadership taken"


def lending_request(ref: str) -> bytes:
    from gateway.messages import Version, encode, model
    from gateway.messages.codes import RequestType, ServiceType

    return encode(model.Request(
        header=model.RequestHeader(supplying_agency_id=model.AgencyId.parse(SERVE_OURS),
                                   requesting_agency_id=model.AgencyId.parse(SERVE_BORROWER),
                                   timestamp=datetime.now(timezone.utc), requesting_agency_request_id=ref),
        bibliographic_info=model.BibliographicInfo(title=f"Title {ref}"),
        service_info=model.ServiceInfo(request_type=RequestType.New, service_type=ServiceType.Loan),
    ), Version.V2017)


@dataclass
class Served:
    """A `gateway serve` subprocess with its own config file and log."""

    directory: Path
    port: int
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        path = self.directory / "gateway.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, db_url: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "gateway.toml"
        config.write_text(
            f'[gateway]\nagency = "{SERVE_OURS}"\nlisten = "127.0.0.1:{self.port}"\ndatabase = "{db_url}"\n'
            f'public_url = "{self.url}/iso18626"\ntick_seconds = 0.2\nleader_retry_seconds = 0.5\n\n'
            f'[[partners]]\nagency = "{SERVE_BORROWER}"\nname = "Borrower"\nurl = "http://127.0.0.1:9/x"\n\n'
            '[[rota_templates]]\nname = "default"\npartners = []\n', encoding="utf-8")
        with (self.directory / "gateway.log").open("ab") as log:  # a file: a pipe nobody reads would fill
            self.proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--config", str(config)],
                                         stdout=subprocess.DEVNULL, stderr=log)

    async def wait_healthy(self) -> None:
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                assert self.proc is not None and self.proc.poll() is None, self.log()[-3000:]
                try:
                    async with session.get(self.url + "/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"gateway did not come up: {self.log()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def post_request(served: Served, ref: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(served.url + "/iso18626", data=lending_request(ref),
                                headers={"Content-Type": "application/xml"}) as response:
            assert response.status == 200, await response.text()


async def make_due(engine: AsyncEngine, ref: str) -> None:
    """Move the request's arrival four days back (it expires after three), so the next timer round
    expires it."""
    from gateway.core.lending import LendingState
    from gateway.service.snapshot import from_json, to_json

    past = datetime.now(timezone.utc) - timedelta(days=4)
    where = lending_requests_t.c.requesting_agency_request_id == ref
    async with engine.begin() as conn:
        extra = (await conn.execute(select(lending_requests_t.c.extra).where(where))).scalar_one()
        state = dataclasses.replace(from_json(LendingState, extra["state"]), received_at=past)
        await conn.execute(update(lending_requests_t).where(where).values(
            extra={**extra, "state": to_json(state)}, deadline_at=past + timedelta(days=3)))


async def status_of(engine: AsyncEngine, ref: str) -> str:
    async with engine.connect() as conn:
        return (await conn.execute(select(lending_requests_t.c.status)
                                   .where(lending_requests_t.c.requesting_agency_request_id == ref))).scalar_one()


async def unfilled_messages(engine: AsyncEngine) -> Counter:
    """Per request: the Unfilled messages queued to the borrower (one per expiry)."""
    from gateway.messages import decode
    from gateway.messages.codes import Status

    async with engine.connect() as conn:
        bodies = (await conn.execute(select(outbox_t.c.body))).scalars().all()
    found: Counter = Counter()
    for body in bodies:
        message = decode(body).message
        if getattr(getattr(message, "status_info", None), "status", None) is Status.Unfilled:
            found[message.header.requesting_agency_request_id] += 1
    return found


async def eventually(check, timeout: float = 30.0) -> float:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout, "not reached in time"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_two_serve_processes_kill_the_leader_the_other_takes_over(db_url, tmp_path):
    postgresql_only(db_url)
    await migrate_async(db_url)  # before the processes start, so they do not migrate at once
    first, second = Served(tmp_path / "first", free_port()), Served(tmp_path / "second", free_port())
    engine = make_engine(db_url)
    try:
        first.start(db_url)
        await first.wait_healthy()

        async def first_leads() -> bool:
            return TAKEN in first.log()
        await eventually(first_leads)
        second.start(db_url)
        await second.wait_healthy()

        # The first leads: a request that falls due is expired, by it alone.
        await post_request(second, "R-1")
        await make_due(engine, "R-1")

        async def expired(ref: str):
            async def check() -> bool:
                return await status_of(engine, ref) == "UNFILLED"
            return check
        await eventually(await expired("R-1"))
        assert TAKEN not in second.log()

        first.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        first.proc.wait(10)  # type: ignore[union-attr]
        await post_request(second, "R-2")
        await make_due(engine, "R-2")

        async def second_leads() -> bool:
            return TAKEN in second.log()
        assert await eventually(second_leads) < 10  # the retry interval plus the lock's release
        await eventually(await expired("R-2"))
        await asyncio.sleep(1.0)  # several more rounds: nothing expires twice
        assert await unfilled_messages(engine) == Counter({"R-1": 1, "R-2": 1})
        assert second.log().count(TAKEN) == 1 and first.log().count(TAKEN) == 1
    finally:
        first.stop()
        second.stop()
        await engine.dispose()
