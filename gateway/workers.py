"""`gateway serve --workers N`: N gateway processes on one port, watched by a parent process.

Each worker is a whole gateway (`gateway serve --worker K`, a fresh interpreter): its own
engine, writer, outbox worker and timer scheduler (the timers run in the one that holds the
leader lock). All of them listen on the same address with SO_REUSEPORT, and the kernel spreads
incoming connections over them. Everything they must agree on is in the PostgreSQL database
(docs/multi-process.md), so several processes on one SQLite file are refused.

The parent only supervises: it starts the workers, logs a worker that dies (with its exit code or
signal) and starts it again after a short delay (longer if it keeps dying at once), and on
SIGTERM or SIGINT stops them all with SIGTERM, killing those still running after a grace period.
The workers are in their own process group, so a Ctrl-C in a terminal reaches the parent alone and
each worker stops once; a worker whose parent is gone (killed with SIGKILL) stops itself.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .config import Config
from .store.db import is_sqlite

__all__ = ["Supervisor", "announce", "parent_gone", "refusal", "worker_command"]

log = logging.getLogger("gateway.workers")

RESTART_DELAY = 1.0  # seconds before a dead worker is started again
MAX_RESTART_DELAY = 30.0  # the delay doubles, up to this, while a worker keeps dying soon after its start
STABLE_AFTER = 10.0  # a worker that lived this long is healthy again: the next restart waits RESTART_DELAY
STOP_GRACE = 30.0  # seconds the workers get to stop cleanly before they are killed
POLL = 0.1


def announce(config: Config) -> None:
    """What a gateway says when it starts serving (one process, or the parent of several)."""
    base = f"http://{config.listen_host}:{config.listen_port}"
    print(f"gateway {config.agency} listening on {base}/iso18626", flush=True)
    if config.web.demo_password:
        print(f"staff pages: open {base}/ and sign in as demo with the password {config.web.demo_password}")


def refusal(config: Config, workers: int) -> str | None:
    """Why `workers` processes cannot run with this configuration (None: they can)."""
    if workers < 1:
        return "--workers must be at least 1"
    if workers > 1 and is_sqlite(config.database):
        return ("--workers above 1 needs PostgreSQL: several processes cannot share one SQLite database "
                "(set [gateway] database = \"postgresql+asyncpg://...\")")
    return None


def worker_command(config_path: str | None, number: int) -> list[str]:
    """The command line of worker `number` (1-based)."""
    command = [sys.executable, "-m", "gateway.cli", "serve", "--worker", str(number)]
    return command + (["--config", config_path] if config_path else [])


@dataclass
class _Slot:
    number: int
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    delay: float = RESTART_DELAY


class Supervisor:
    """Runs `count` workers (`command(number)` each) until SIGTERM/SIGINT."""

    def __init__(self, command: Callable[[int], Sequence[str]], count: int, *,
                 restart_delay: float = RESTART_DELAY, stop_grace: float = STOP_GRACE):
        self.command, self.restart_delay, self.stop_grace = command, restart_delay, stop_grace
        self.slots = [_Slot(n, delay=restart_delay) for n in range(1, count + 1)]
        self._stopping = False

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in self.slots:
                self._start(slot)
            while not self._stopping:
                now = time.monotonic()
                for slot in self.slots:
                    self._watch(slot, now)
                time.sleep(POLL)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._stop_all()
        return 0

    def _stop(self, signum: int, frame: object) -> None:
        if not self._stopping:
            log.info("%s: stopping the workers", signal.Signals(signum).name)
        self._stopping = True

    def _start(self, slot: _Slot) -> None:
        # Its own process group: a terminal's Ctrl-C goes to the parent, which stops each worker once.
        slot.process = subprocess.Popen(list(self.command(slot.number)), process_group=0)
        slot.started_at, slot.restart_at = time.monotonic(), None
        log.info("worker %d started (pid %d)", slot.number, slot.process.pid)

    def _watch(self, slot: _Slot, now: float) -> None:
        if slot.restart_at is not None:
            if now >= slot.restart_at:
                self._start(slot)
            return
        assert slot.process is not None
        code = slot.process.poll()
        if code is None:
            return
        lived = now - slot.started_at
        # The first restart waits the short delay; each further one soon after a start, twice as long.
        wait = self.restart_delay if lived >= STABLE_AFTER else slot.delay
        slot.delay = self.restart_delay if lived >= STABLE_AFTER else min(wait * 2, MAX_RESTART_DELAY)
        log.error("worker %d (pid %d) died: %s, after %.1f s; restarting it in %.1f s",
                  slot.number, slot.process.pid, _exit_text(code), lived, wait)
        slot.restart_at = now + wait

    def _stop_all(self) -> None:
        running = [s.process for s in self.slots if s.process is not None and s.process.poll() is None]
        for process in running:
            _signal(process, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop within %.0f s: killed", process.pid, self.stop_grace)
                _signal(process, signal.SIGKILL)
                process.wait()
        log.info("all workers stopped")


def _signal(process: subprocess.Popen, sig: int) -> None:
    try:
        process.send_signal(sig)
    except ProcessLookupError:
        pass


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


async def parent_gone(parent_pid: int, interval: float = 1.0) -> None:
    """Returns once the process that started this worker is gone (the worker then stops itself)."""
    import asyncio

    while os.getppid() == parent_pid:
        await asyncio.sleep(interval)
