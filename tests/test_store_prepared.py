"""`Prepared` statements (the inbound hot path's driver-cursor executes) store exactly what
SQLAlchemy's own execute would, report the same errors, and work on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError

from gateway.store import db
from gateway.store.models import history_t, raw_messages_t
from gateway.store.prepared import Prepared, sqlite_datetime
from gateway.store.types import UTCDateTime

CEST = timezone(timedelta(hours=2))


@pytest.mark.parametrize("value", [
    datetime(2026, 1, 1, tzinfo=UTC),
    datetime(2026, 11, 28, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 3, 29, 2, 30, 0, 5, tzinfo=CEST),
    datetime(1999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    None,
])
def test_sqlite_datetime_is_what_utcdatetime_stores(value):
    dialect = sqlite.dialect()
    type_ = UTCDateTime().dialect_impl(dialect)
    expected = type_.bind_processor(dialect)(value)
    assert sqlite_datetime(value) == expected


def test_sqlite_datetime_refuses_what_utcdatetime_refuses():
    with pytest.raises(ValueError, match="naive"):
        sqlite_datetime(datetime(2026, 1, 1))
    with pytest.raises(TypeError):
        sqlite_datetime("2026-01-01")  # type: ignore[arg-type]


def _history(n: int, at: datetime) -> dict:
    return {"request_id": None, "at": at, "actor": f"actor-{n}", "event": "note", "from_status": "A",
            "to_status": "B", "detail": {"text": f"entry {n}", "n": n}, "raw_message_id": None}


async def test_prepared_rows_read_back_like_core_rows(engine):
    at = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=CEST)
    columns = tuple(_history(0, at))
    fast = Prepared(insert(history_t), columns)
    async with db.begin_write(engine) as conn:
        changed = await conn.run_sync(lambda c: fast.executemany(c, [_history(1, at), _history(2, at)]))
        await conn.execute(insert(history_t), [_history(3, at)])
    assert changed == 2 or (engine.dialect.name != "sqlite" and changed == -1)  # asyncpg cannot count
    async with engine.connect() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(select(history_t).order_by(history_t.c.id))]
    assert [r["actor"] for r in rows] == ["actor-1", "actor-2", "actor-3"]
    for row in rows:  # the same aware UTC time and the same JSON, whichever way it was written
        assert row["at"] == at and row["at"].tzinfo is not None
    assert [r["detail"] for r in rows] == [{"text": f"entry {n}", "n": n} for n in (1, 2, 3)]


async def test_prepared_update_counts_rows_and_defaults_apply(engine):
    at = datetime(2026, 1, 2, tzinfo=UTC)
    without_at = {k: v for k, v in _history(1, at).items() if k != "at"}
    fast_insert = Prepared(insert(history_t), tuple(without_at))  # `at` from the column default
    rename = Prepared(update(history_t).where(history_t.c.actor == bindparam("_old"))
                      .values(actor=bindparam("_new")))
    async with db.begin_write(engine) as conn:
        await conn.run_sync(lambda c: fast_insert.executemany(c, [without_at, {**without_at, "actor": "b"}]))
        changed = await conn.run_sync(lambda c: rename.executemany(
            c, [{"_old": "actor-1", "_new": "x"}, {"_old": "b", "_new": "y"}, {"_old": "none", "_new": "z"}]))
    async with engine.connect() as conn:
        rows = (await conn.execute(select(history_t.c.actor, history_t.c.at).order_by(history_t.c.id))).all()
    assert [r.actor for r in rows] == ["x", "y"]
    assert all(r.at.tzinfo is not None and abs(r.at - datetime.now(UTC)) < timedelta(minutes=5) for r in rows)
    if engine.dialect.name == "sqlite" or changed != -1:  # asyncpg cannot count an executemany
        assert changed == 2


async def test_prepared_insert_skips_duplicates_and_translates_errors(engine):
    from sqlalchemy.dialects import postgresql

    dialect_insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    key = {"direction": "in", "partner_agency": "ISIL:P", "kind": "request", "requesting_agency": "ISIL:R",
           "requesting_agency_request_id": "R-1", "message_timestamp": "2026-01-01T00:00:00Z",
           "content_sha256": "0" * 64}
    row = {**key, "body": b"<x/>", "body_sha256": "1" * 64, "received_at": datetime(2026, 1, 1, tzinfo=UTC), "confirmation": None}
    if_new = Prepared(dialect_insert(raw_messages_t).on_conflict_do_nothing(), tuple(row))
    plain = Prepared(insert(raw_messages_t), tuple(row))
    async with db.begin_write(engine) as conn:
        first = await conn.run_sync(lambda c: if_new.insert(c, row))
        again = await conn.run_sync(lambda c: if_new.insert(c, row))
    assert isinstance(first, int) and again is None
    with pytest.raises(IntegrityError):  # SQLAlchemy's error, as conn.execute would raise
        async with db.begin_write(engine) as conn:
            await conn.run_sync(lambda c: plain.insert(c, row))
