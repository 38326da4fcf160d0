"""One writer that commits steps in groups (docs/architecture.md: atomic steps, group commit).

A step is a plain function of a SQLAlchemy `Connection`. The writer queues steps, runs up to
`max_batch` of them in one transaction, each inside its own savepoint, commits, and only then
answers each caller. A step that raises rolls back alone; its neighbours still commit. A step
that raises `Conflict` (another transaction changed the row first) is run again at once in a
new savepoint (`_retrying`: it reads the row again and decides on what it finds), and if it
keeps losing, again in a later batch, a bounded number of times.

SQLite has one writer anyway, so grouping is where its throughput comes from. Its batches run
on the stdlib driver (a hop to aiosqlite's thread per statement costs more than the statement)
in the event loop's own thread: a batch takes a few milliseconds, and handing it to a thread
instead cost about a third of the inbound throughput in bench/bench_inbound.py (the two threads
take turns on the GIL). Every write of this process goes through the writer and readers never
block a writer in WAL mode, so the loop can only wait on a lock that another process writing
the same file holds (up to the busy timeout). `sqlite_thread=True` runs the batches in a thread
of their own for such set-ups. On PostgreSQL the same steps run on the async engine, and
several processes may run writers side by side: optimistic version checks keep them from
losing each other's updates. There the writer also runs several batches at once
(`concurrency`, each in its own transaction on its own pooled connection): a batch decides
without holding any lock (its requests are read, not locked), and its version-checked UPDATE
is the first write, so a batch that lost the race to another transaction meets a `Conflict`
at once and its steps run again, deciding on the new state. While one batch waits on the
database (its statements, its commit), the next one decides.

A batch waits a little for more steps when fewer are queued than were about at the previous
batch (`linger`), so that the callers just answered join the next transaction.

SQLite copies its write-ahead log back into the database file (a checkpoint, with two fsyncs)
in the commit that happens to cross 1000 pages. The writer leaves that to a thread of its own
(`_Checkpointer`, which runs in C without the GIL), so no commit, and so no event loop, waits
for it; the writer's own connection checkpoints only as a backstop, far later.

A step may also carry `run_many(conn, steps) -> (results, after_commit)`: the writer then hands
it a run of consecutive steps that share the same `run_many` at once, so they can be applied
with a few statements for the whole run instead of several per step. A batch that is one such
run gets no savepoint; otherwise the run gets one. `after_commit` (or None) is called once the
transaction has committed (e.g. to remember what was written). If `run_many` raises, what it
did is rolled back and each of its steps is run alone (`run_many(conn, [step])` in its own
savepoint), so a failing step still fails alone.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

from ..store.db import begin_write, is_sqlite, make_sync_engine, write_engine

T = TypeVar("T")
# Batches in flight at once on PostgreSQL. Several are safe (version-checked, retried on a
# conflict) but gave nothing on the 2-core development machine, which the gateway's CPU fills:
# 16 messages at a time, in process, CPU per message 1850-1960 µs for 1 and 2 lanes, 2110-2350 µs
# for 3 (the machine shared with other jobs). One lane by default, until a quiet, bigger machine
# shows a gain; more processes (`gateway serve --workers N`) are the way to use more cores.
POSTGRESQL_CONCURRENCY = 1
Step = Callable[[Connection], T]
log = logging.getLogger(__name__)


class Conflict(Exception):
    """The row moved on under us (optimistic version check failed): run the step again."""


@dataclass
class _Job(Generic[T]):
    step: Step
    future: asyncio.Future
    attempts: int = 0


Outcome = tuple[bool, Any]  # (True, result) or (False, exception)
AfterCommit = Callable[[], None]


def _runner(step: Step) -> Any:
    return getattr(step, "run_many", None)


def _one_run(steps: list[Step]) -> bool:
    """All of `steps` go to the same `run_many`."""
    first = _runner(steps[0])
    return first is not None and all(_runner(step) == first for step in steps[1:])


def _run_steps(conn: Connection, steps: list[Step], whole: bool = False, stats: Any = None
               ) -> tuple[list[Outcome], list[AfterCommit]]:
    """Run `steps` in order; return their outcomes and what to call after the commit.

    `whole`: the steps are one run (`_one_run`) and get no savepoint; if it raises, the
    transaction rolls back and the writer runs the steps again the usual way."""
    if whole:
        values, hook = _runner(steps[0])(conn, steps)
        return [(True, value) for value in values], [hook] if hook else []
    outcomes: list[Outcome] = []
    after_commit: list[AfterCommit] = []
    for run_many, run in groupby(steps, key=_runner):
        run = list(run)
        if run_many is not None and len(run) > 1:
            results = _savepoint(conn, lambda: run_many(conn, run))
            if results[0]:
                values, hook = results[1]
                outcomes.extend((True, value) for value in values)
                after_commit.extend([hook] if hook else [])
                continue
            log.debug("batch of %d steps failed (%r); running them one by one", len(run), results[1])
        for step in run:
            outcomes.append(_run_one(conn, step, after_commit, stats))
    return outcomes, after_commit


def _run_one(conn: Connection, step: Step, after_commit: list[AfterCommit], stats: Any = None) -> Outcome:
    run_many = _runner(step)
    if run_many is None:
        return _retrying(conn, lambda: step(conn), stats)
    ok, value = _retrying(conn, lambda: run_many(conn, [step]), stats)
    if not ok:
        return ok, value
    (result,), hook = value
    after_commit.extend([hook] if hook else [])
    return True, result


IN_PLACE_RETRIES = 3  # a step that met a newer version tries again at once, in the same transaction


def _retrying(conn: Connection, work: Callable[[], Any], stats: Any) -> Outcome:
    """`_savepoint(work)`, again (up to IN_PLACE_RETRIES times) while it raises `Conflict`.

    A Conflict means the version-checked UPDATE found a newer version, which another
    transaction has committed (on PostgreSQL the UPDATE waited for it), so reading the request
    again at once sees it: deciding again right here wins unless yet another transaction got
    in between. Sent back to the queue instead, a step on a busy request would meet the same
    race once more in every batch."""
    for _ in range(IN_PLACE_RETRIES):
        outcome = _savepoint(conn, work)
        if outcome[0] or not isinstance(outcome[1], Conflict):
            return outcome
        if stats is not None:
            stats.conflicts += 1
    return _savepoint(conn, work)


def _savepoint(conn: Connection, work: Callable[[], Any]) -> Outcome:
    savepoint = conn.begin_nested()
    try:
        result = work()
    except Exception as exc:  # noqa: BLE001 - handed to the step's caller
        savepoint.rollback()
        return False, exc
    savepoint.commit()
    return True, result


def _resolve(future: asyncio.Future | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


def _committed(after_commit: list[AfterCommit]) -> None:
    for hook in after_commit:
        try:
            hook()
        except Exception:  # the data is committed; a hook only remembers things
            log.exception("after-commit hook failed")


class _Checkpointer:
    """Checkpoints a SQLite database in a thread with a connection of its own, when poked.

    A PASSIVE checkpoint copies what it can without waiting for readers or the writer; what it
    cannot copy yet waits for the next one."""

    EVERY = 16  # commits between checkpoints (SQLite's own default is about every 1000 pages)
    BACKSTOP_PAGES = 20_000  # the writer's connection checkpoints itself past this many

    def __init__(self, engine: Engine):
        self._engine = engine
        self._commits = 0
        self._wake = threading.Event()
        self._stopping = False
        event.listen(engine, "connect", self._on_connect)
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway-checkpoint", daemon=True)
        self._thread.start()
        # Started means connected: the thread's connection is taken now, not at some later moment
        # in the middle of the writer's first batches (a SQLite connect takes microseconds).
        self._connected.wait(5)

    def _on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={self.BACKSTOP_PAGES}")

    def committed(self) -> None:
        self._commits += 1
        if self._commits % self.EVERY == 0:
            self._wake.set()

    def _run(self) -> None:
        # On the driver's connection, outside any transaction: SQLAlchemy would begin one, and
        # SQLite refuses to checkpoint inside a transaction ("database table is locked").
        try:
            raw = self._engine.raw_connection()
        finally:
            self._connected.set()
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                try:
                    raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except Exception:  # noqa: BLE001 - the backstop still bounds the log
                    log.exception("checkpoint failed")
        finally:
            raw.close()

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()


class Writer:
    def __init__(self, engine: AsyncEngine, *, max_batch: int = 64, max_conflicts: int = 5,
                 linger: float = 0.001, sqlite_thread: bool = False, concurrency: int | None = None):
        """`linger`: how long a batch may wait for more jobs (see `_gather`). `sqlite_thread`:
        run SQLite batches in a thread of their own instead of the event loop's (see above).
        `concurrency`: batches in flight at once; SQLite always 1 (one writer anyway),
        PostgreSQL `POSTGRESQL_CONCURRENCY` unless given."""
        self.engine = engine
        self.max_batch = max_batch
        self.linger = linger
        self.max_conflicts = max_conflicts
        self.concurrency = 1 if is_sqlite(engine) else max(1, concurrency or POSTGRESQL_CONCURRENCY)
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._inflight: dict[int, list[_Job]] = {}  # the batches being run, by lane, for close()
        self._arrival: asyncio.Future | None = None  # lingering lanes wait on it for more jobs
        self._task: asyncio.Task | None = None
        self._sync_engine = make_sync_engine(engine.url) if is_sqlite(engine) else None
        self._inline = self._sync_engine is not None and not sqlite_thread
        self._thread = ThreadPoolExecutor(1, "gateway-writer") if self._sync_engine is not None and sqlite_thread else None
        self._checkpointer: _Checkpointer | None = None  # its thread starts with the writer, in start()
        self._connection: Connection | None = None  # SQLite: kept across batches (see _transaction)
        self.batches = 0  # for tests and benchmarks
        self.steps = 0
        self.conflicts = 0  # batches or steps that met a newer version and ran again

    async def start(self) -> None:
        # A writer that is made but never started (or closed) must leave no thread behind.
        if self._sync_engine is not None and self._checkpointer is None:
            self._checkpointer = _Checkpointer(self._sync_engine)
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="gateway-writer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        # Nobody may wait forever on a writer that has stopped: a batch cut short by the
        # cancellation, or jobs still queued, are failed (their transaction never committed,
        # or committed without its caller knowing: the caller treats it like a crash).
        for job in [*(job for jobs in self._inflight.values() for job in jobs), *self._drain()]:
            if not job.future.done():
                job.future.set_exception(ConnectionError("the writer stopped before this step was answered"))
        self._inflight = {}
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._sync_engine is not None:
            self._sync_engine.dispose()

    async def run(self, step: Step[T]) -> T:
        """Run `step` in the next group transaction; return its result once committed."""
        if self._task is None:
            await self.start()
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(step, future))
        _resolve(self._arrival)
        return await future

    def _drain(self) -> list[_Job]:
        jobs = []
        while not self._queue.empty():
            jobs.append(self._queue.get_nowait())
        return jobs

    async def _loop(self) -> None:
        if self.concurrency == 1:
            return await self._lane(0)
        lanes = [asyncio.create_task(self._lane(n), name=f"gateway-writer-{n}") for n in range(self.concurrency)]
        try:
            await asyncio.gather(*lanes)
        finally:
            for lane in lanes:
                lane.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)

    async def _lane(self, lane: int) -> None:
        """Take a batch from the queue, run it, and again; several lanes share the queue."""
        busy = 1  # callers seen around the previous batch: its jobs and those queued meanwhile
        while True:
            jobs = [await self._queue.get()]
            self._inflight[lane] = jobs
            await self._gather(jobs, busy)
            await self._run_batch(jobs)
            del self._inflight[lane]
            busy = len(jobs) + self._queue.qsize()

    async def _gather(self, jobs: list[_Job], expected: int) -> None:
        """Take queued jobs up to `max_batch`. While fewer than `expected` are there, wait a
        little (up to `linger` seconds) for more: the callers just answered are likely sending
        their next job, and a transaction costs much the same for one step as for several, so
        they join this batch rather than one of them paying for a transaction alone while the
        rest wait."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.linger
        while len(jobs) < self.max_batch:
            if not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            elif len(jobs) >= expected or loop.time() >= deadline:
                return
            else:
                if self._arrival is None or self._arrival.done():  # lanes lingering at once share it
                    self._arrival = loop.create_future()
                arrival = self._arrival
                timer = loop.call_at(deadline, _resolve, arrival)
                await arrival
                timer.cancel()

    def _transaction(self, steps: list[Step], whole: bool = False) -> list[Outcome]:
        # One connection for every batch: checking one out of the pool and setting it up per
        # batch cost about a tenth of a batch. A batch that fails drops it; the next one connects.
        if self._connection is None:
            self._connection = write_engine(self._sync_engine).connect()
        conn = self._connection
        try:
            with conn.begin():
                outcomes, after_commit = _run_steps(conn, steps, whole, self)
        except BaseException:
            self._connection = None
            conn.close()
            raise
        if self._checkpointer is not None:
            self._checkpointer.committed()
        _committed(after_commit)
        return outcomes

    async def _execute(self, steps: list[Step], whole: bool = False) -> list[Outcome]:
        """One transaction for `steps`, committed before this returns."""
        if self._inline:
            return self._transaction(steps, whole)
        if self._thread is not None:
            return await asyncio.get_running_loop().run_in_executor(self._thread, self._transaction, steps, whole)
        async with begin_write(self.engine) as conn:
            outcomes, after_commit = await conn.run_sync(_run_steps, steps, whole, self)
        _committed(after_commit)
        return outcomes

    async def _run_whole(self, steps: list[Step]) -> list[Outcome] | None:
        """A batch of one run without savepoints (two statements fewer); None if it failed, and
        then nothing of it was committed."""
        try:
            return await self._execute(steps, whole=True)
        except Exception as exc:  # noqa: BLE001 - the steps run again, each on its own
            self.conflicts += isinstance(exc, Conflict)
            log.debug("batch of %d steps failed (%r); running them the usual way", len(steps), exc)
            return None

    async def _run_batch(self, jobs: list[_Job]) -> None:
        steps = [job.step for job in jobs]
        outcomes = await self._run_whole(steps) if _one_run(steps) else None
        try:
            if outcomes is None:
                outcomes = await self._execute(steps)
        except Exception:  # the transaction itself failed: give every step its own
            log.exception("group commit of %d steps failed; running them one by one", len(jobs))
            outcomes = []
            for job in jobs:
                try:
                    outcomes.extend(await self._execute([job.step]))
                except Exception as exc:  # noqa: BLE001
                    outcomes.append((False, exc))
        self.batches += 1
        self.steps += len(jobs)
        for job, (ok, value) in zip(jobs, outcomes):
            if job.future.done():
                continue
            if not ok and isinstance(value, Conflict) and job.attempts < self.max_conflicts:
                job.attempts += 1
                self.conflicts += 1
                self._queue.put_nowait(job)
            elif ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)
