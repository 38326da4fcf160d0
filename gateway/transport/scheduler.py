"""Timers inside the server process: every `interval` seconds, run the services' ticks.

Deadlines themselves live in the database (rota_entries.deadline_at for borrowing,
lending_requests.deadline_at for lending), so a restart loses
nothing: the first tick after start-up catches up on whatever fell due meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, ticks: list[Callable[[], Awaitable[object]]], interval: float = 30.0):
        self.ticks, self.interval = ticks, interval
        self._task: asyncio.Task | None = None

    async def run_once(self) -> None:
        for tick in self.ticks:
            try:
                await tick()
            except Exception:  # a failing tick must not stop the others, nor the next round
                log.exception("timer tick %r failed", tick)

    async def _loop(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="gateway-scheduler")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
