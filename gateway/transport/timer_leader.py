"""Which process runs the timers when several gateway processes share one database.

The timers (deadline and grace ticks, lending expiry, replay-guard pruning) must run in one
process only. On PostgreSQL that process is the holder of a session advisory lock, taken with
`pg_try_advisory_lock` on a connection kept for that purpose: when the holder dies, PostgreSQL
ends its session and frees the lock, and the next process to try takes it. The lock is keyed by
the schema, so gateways kept in different schemas of one database each have their own leader.

Never two leaders at once: the holder checks its lock connection answers before each tick, and
gives leadership up as soon as it does not (PostgreSQL may by then have freed the lock). What is
left is one tick already running when the connection dies, against a successor's first tick
at least a retry interval later; the ticks are idempotent (a Tick re-reads the request's state)
should that ever happen.

On SQLite only one process can use the file, so that process is always the leader.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

# The advisory lock's first key (any constant of our own); the second is the schema's hash.
LOCK_CLASS = 18626
CHECK_TIMEOUT = 5.0  # seconds the lock connection has to answer before leadership is given up

_TRY_LOCK = text("SELECT pg_try_advisory_lock(:cls, hashtext(current_schema()))")
_ALIVE = text("SELECT 1")


class TimerLeadership(Protocol):
    is_leader: bool

    async def hold(self) -> bool: ...
    async def release(self) -> None: ...


class SoleLeader:
    """The one process on an SQLite file: always the leader, nothing to hold."""

    is_leader = True

    async def hold(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class AdvisoryLockLeader:
    """Leadership through a PostgreSQL session advisory lock on a connection of `engine`."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self.is_leader = False
        self._conn: AsyncConnection | None = None

    async def hold(self) -> bool:
        """Whether this process is the leader now: confirm the lock connection still answers if we
        hold the lock, else try to take it."""
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
            # arrives as the query ends, and the scheduler would then never stop.
            async with asyncio.timeout(CHECK_TIMEOUT):
                if self.is_leader:
                    await self._query(_ALIVE)
                else:
                    await self._try_lock()
        except Exception as exc:  # noqa: BLE001 - a lost connection means we hold no lock
            if self.is_leader:
                log.warning("timer leadership lost: the lock connection failed (%s)", _first_line(exc))
            await self.release()
        return self.is_leader

    async def _try_lock(self) -> None:
        if await self._query(_TRY_LOCK.bindparams(cls=LOCK_CLASS)):
            self.is_leader = True
            log.info("timer leadership taken: this process runs the timers")
        else:  # another process leads: give the connection back, it holds nothing
            await self._close()

    async def _query(self, statement) -> object:
        if self._conn is None:
            conn = await self.engine.connect()
            # Outside any transaction, so the connection never sits idle in one.
            self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        return (await self._conn.execute(statement)).scalar()

    async def release(self) -> None:
        """Give leadership up. The lock connection is discarded, never returned to the pool, so that
        no other user of the pool can find itself holding the lock; closing it frees the lock."""
        if self.is_leader:
            self.is_leader = False
            log.info("timer leadership released")
        await self._close(discard=True)

    async def _close(self, discard: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if discard:
                # Cut the socket first: a graceful close of a connection whose last query was cut
                # off can wait forever for that query (seen under load); this closes at once.
                raw = await conn.get_raw_connection()
                driver = raw.driver_connection
                if driver is not None and hasattr(driver, "terminate"):
                    driver.terminate()
                await conn.invalidate()
            await conn.close()
        except Exception:  # noqa: BLE001 - a broken connection is gone either way
            log.debug("closing the timer lock connection failed", exc_info=True)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def timer_leadership(engine: AsyncEngine) -> TimerLeadership:
    return SoleLeader() if engine.dialect.name == "sqlite" else AdvisoryLockLeader(engine)
