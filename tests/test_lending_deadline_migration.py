"""Migration 0009 moves the lending expiry deadline out of the state JSON into the indexed
`lending_requests.deadline_at` column, on SQLite and PostgreSQL, and back on downgrade."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from alembic import command
from sqlalchemy import insert, select

from gateway.store import db
from gateway.store.models import lending_requests_t

from test_service_lending import T0, lending, receive, request, table  # noqa: F401 - the fixture

CET = timezone(timedelta(hours=1))


def _old_row(ref: str, extra: dict) -> dict:
    """A lending row as revision 0008 stored it: the deadline lives in `extra`."""
    return {"requesting_agency": "ISIL:US-OLD", "requesting_agency_request_id": ref, "supplying_agency": "ISIL:DK-US",
            "status": "NEW", "needs_attention": False, "extra": extra, "created_at": T0, "updated_at": T0,
            "version": 1}


async def test_existing_lending_rows_get_their_deadline(engine):
    await db._run_alembic_async(engine, lambda cfg: command.downgrade(cfg, "0008"))
    old = set(lending_requests_t.c.keys()) - {"deadline_at"}
    due = datetime(2026, 12, 1, 10, 0, tzinfo=CET)
    rows = [_old_row("R-due", {"state": {"s": 1}, "deadline": due.isoformat()}),
            _old_row("R-none", {"state": {"s": 2}, "deadline": None}),
            _old_row("R-older", {"state": {"s": 3}})]
    async with engine.begin() as conn:
        for row in rows:
            await conn.execute(insert(lending_requests_t).values({k: v for k, v in row.items() if k in old}))
    await db.migrate_async(engine)
    got = {r["requesting_agency_request_id"]: r for r in await table(engine, lending_requests_t)}
    assert got["R-due"]["deadline_at"] == due
    assert got["R-due"]["deadline_at"].tzinfo is not None
    assert got["R-none"]["deadline_at"] is None and got["R-older"]["deadline_at"] is None
    assert [got[ref]["extra"] for ref in ("R-due", "R-none", "R-older")] == [{"state": {"s": 1}},
                                                                             {"state": {"s": 2}},
                                                                             {"state": {"s": 3}}]


async def test_a_request_keeps_its_deadline_through_downgrade_and_upgrade(lending, engine):
    await receive(lending, request())
    expires = T0 + timedelta(days=4)  # Friday 09:00 + two weekdays
    assert (await table(engine, lending_requests_t))[0]["deadline_at"] == expires
    await db._run_alembic_async(engine, lambda cfg: command.downgrade(cfg, "0008"))
    async with engine.connect() as conn:
        extra = (await conn.execute(select(lending_requests_t.c.extra))).scalar_one()
    assert datetime.fromisoformat(extra["deadline"]) == expires
    await db.migrate_async(engine)
    row = (await table(engine, lending_requests_t))[0]
    assert row["deadline_at"] == expires and "deadline" not in row["extra"]
    lending.clock.now = expires
    assert await lending.tick() == [row["id"]]
    assert (await table(engine, lending_requests_t))[0]["status"] == "UNFILLED"
