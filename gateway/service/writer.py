"""One writer that commits steps in groups (DESIGN §2 and §8).

A step is a plain function of a SQLAlchemy `Connection`. The writer queues steps, runs up to
`max_batch` of them in one transaction, each inside its own savepoint, commits, and only then
answers each caller. A step that raises rolls back alone; its neighbours still commit. A step
that raises `Conflict` (another process changed the row first) is run again in the next batch.

SQLite has one writer anyway, so grouping is where its throughput comes from; its batches
run in one dedicated thread on the stdlib driver, because a hop to aiosqlite's thread per
statement costs more than the statement. On PostgreSQL the same steps run on the async engine,
and several processes may run writers side by side: optimistic version checks keep them from
losing each other's updates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ..store.db import begin_write, is_sqlite, make_sync_engine

T = TypeVar("T")
Step = Callable[[Connection], T]
log = logging.getLogger(__name__)


class Conflict(Exception):
    """The row moved on under us (optimistic version check failed): run the step again."""


@dataclass
class _Job(Generic[T]):
    step: Step
    future: asyncio.Future
    attempts: int = 0


def _run_steps(conn: Connection, steps: list[Step]) -> list[tuple[bool, Any]]:
    outcomes: list[tuple[bool, Any]] = []
    for step in steps:
        savepoint = conn.begin_nested()
        try:
            result = step(conn)
        except Exception as exc:  # noqa: BLE001 - handed to the step's caller
            savepoint.rollback()
            outcomes.append((False, exc))
        else:
            savepoint.commit()
            outcomes.append((True, result))
    return outcomes


class Writer:
    def __init__(self, engine: AsyncEngine, *, max_batch: int = 64, max_conflicts: int = 5):
        self.engine = engine
        self.max_batch = max_batch
        self.max_conflicts = max_conflicts
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._sync_engine = make_sync_engine(engine.url) if is_sqlite(engine) else None
        self._thread = ThreadPoolExecutor(1, "gateway-writer") if self._sync_engine is not None else None
        self.batches = 0  # for tests and benchmarks
        self.steps = 0

    async def start(self) -> None:
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
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._sync_engine.dispose()  # type: ignore[union-attr]
            self._thread = None

    async def run(self, step: Step[T]) -> T:
        """Run `step` in the next group transaction; return its result once committed."""
        if self._task is None:
            await self.start()
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(step, future))
        return await future

    async def _loop(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            while len(jobs) < self.max_batch and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            await self._run_batch(jobs)

    def _transaction(self, steps: list[Step]) -> list[tuple[bool, Any]]:
        with begin_write(self._sync_engine) as conn:
            return _run_steps(conn, steps)

    async def _execute(self, steps: list[Step]) -> list[tuple[bool, Any]]:
        """One transaction for `steps`, committed before this returns."""
        if self._thread is not None:
            return await asyncio.get_running_loop().run_in_executor(self._thread, self._transaction, steps)
        async with begin_write(self.engine) as conn:
            return await conn.run_sync(_run_steps, steps)

    async def _run_batch(self, jobs: list[_Job]) -> None:
        try:
            outcomes = await self._execute([job.step for job in jobs])
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
                self._queue.put_nowait(job)
            elif ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)
