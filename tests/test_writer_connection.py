"""The SQLite writer keeps one connection across batches, and drops it when a batch breaks it.

Also on both databases: a batch whose transaction itself fails (not one step in it) leaves the
writer able to commit the next batch.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from sqlalchemy import Connection, event, func, select

from gateway.service.writer import Writer
from gateway.store import queries
from gateway.store.models import history_t

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def add_request(conn: Connection) -> int:
    return queries.insert_request(conn, {"requester": "patron"}, [], now=NOW)


def note(request_id: int, text: str):
    def step(conn: Connection) -> str:
        queries.insert_history(conn, {"request_id": request_id, "at": NOW, "actor": "staff",
                                      "event": "note", "detail": {"text": text}})
        return text
    return step


def break_connection(conn: Connection) -> None:
    """Closes the driver's connection under the transaction: nothing after it, not even the
    commit, can run on it."""
    conn.connection.dbapi_connection.close()


async def history_texts(engine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(history_t.c.detail).order_by(history_t.c.id))
        return [row.detail["text"] for row in rows]


async def test_sqlite_batches_share_one_connection(engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only: PostgreSQL batches run on the async pool")
    writer = Writer(engine)
    checkouts: list[object] = []
    try:
        rid = await writer.run(add_request)
        event.listen(writer._sync_engine, "checkout", lambda dbapi, record, proxy: checkouts.append(dbapi))
        for n in range(5):  # one after another: five batches
            assert await writer.run(note(rid, f"note {n}")) == f"note {n}"
        assert writer.batches == 6
        assert checkouts == []  # the connection of the first batch served all the others
        assert await history_texts(engine) == [f"note {n}" for n in range(5)]
    finally:
        await writer.close()


async def test_a_batch_that_breaks_its_connection_fails_alone(engine) -> None:
    writer = Writer(engine)
    try:
        rid = await writer.run(add_request)
        await writer.run(note(rid, "before"))
        if engine.dialect.name == "sqlite":
            breaking = asyncio.ensure_future(writer.run(break_connection))
            with pytest.raises(Exception):
                await breaking
        # The writer goes on: a new connection for the next batches, nothing lost or doubled.
        results = await asyncio.gather(*(writer.run(note(rid, f"after {n}")) for n in range(3)))
        assert results == ["after 0", "after 1", "after 2"]
        assert await history_texts(engine) == ["before", "after 0", "after 1", "after 2"]
        async with engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(history_t))).scalar_one() == 4
    finally:
        await writer.close()
