"""Timers inside the server process: every `interval` seconds, run the services' ticks.

Deadlines themselves live in the database (rota_entries.deadline_at for borrowing,
lending_requests.deadline_at for lending), so a restart loses
nothing: the first tick after start-up catches up on whatever fell due meanwhile.

With several processes on one database, only the timer leader ticks (timer_leader.py); the
others try to become leader every `retry_interval` seconds, so one takes over soon after the
leader dies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .timer_leader import SoleLeader, TimerLeadership

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, ticks: list[Callable[[], Awaitable[object]]], interval: float = 30.0,
                 leadership: TimerLeadership | None = None, retry_interval: float = 5.0):
        self.ticks, self.interval = ticks, interval
        self.leadership = leadership if leadership is not None else SoleLeader()
        self.retry_interval = retry_interval
        self._task: asyncio.Task | None = None

    @property
    def is_leader(self) -> bool:
        return self.leadership.is_leader

    async def run_once(self) -> None:
        """Run every tick now, leader or not (for tests and tools)."""
        for tick in self.ticks:
            await self._run(tick)

    async def run_as_leader(self) -> bool:
        """Run the ticks if this process leads, confirming leadership before each of them, so a
        process that lost its lock stops at once. Whether it ran (some of) them."""
        ran = False
        for tick in self.ticks:
            if not await self.leadership.hold():
                break
            await self._run(tick)
            ran = True
        return ran

    async def _run(self, tick: Callable[[], Awaitable[object]]) -> None:
        try:
            await tick()
        except Exception:  # a failing tick must not stop the others, nor the next round
            log.exception("timer tick %r failed", tick)

    async def _loop(self) -> None:
        while True:
            ran = await self.run_as_leader()
            await asyncio.sleep(self.interval if ran else self.retry_interval)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="gateway-scheduler")

    async def close(self) -> None:
        task, self._task = self._task, None
        # Cancelled again until it ends: code a tick awaits (a driver, a library) may swallow one
        # cancellation that arrives just as it finishes, and the loop would carry on.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.error("the timer loop ended with an error", exc_info=task.exception())
        await self.leadership.release()
