"""The reads and the write behind slips and live pages, on SQLite and PostgreSQL: "Mark as
printed" (slip_printed_at and a history entry, the version and updated_at left alone) and the
markers the live streams poll."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from gateway.service.slips import mark_printed_step
from gateway.store import db
from gateway.store import queries as sq
from gateway.store.models import borrowing_requests_t as br
from gateway.store.models import history_t, lending_requests_t as lr
from gateway.web import live

NOW = datetime(2030, 3, 4, 5, 6, tzinfo=UTC)


def _rows(conn):
    first = sq.insert_request(conn, {"status": "RECEIVED_PHYSICALLY", "requester": "p-1",
                                     "pickup_location": "Main"}, now=NOW)
    second = sq.insert_request(conn, {"status": "CREATED", "requester": "p-2", "pickup_location": "Main"}, now=NOW)
    lending = sq.insert_lending(conn, {"requesting_agency": "ISIL:XX-A", "requesting_agency_request_id": "R1",
                                       "supplying_agency": "ISIL:XX-US", "status": "NEW"}, now=NOW)
    return first, second, lending


async def test_mark_printed_records_the_time_and_history_and_wakes_only_its_markers(engine):
    async with db.begin_write(engine) as conn:
        first, second, lending = await conn.run_sync(_rows)
    async with engine.connect() as conn:
        before = {rid: await conn.run_sync(live.borrowing_marker, rid) for rid in (first, second)}
        list_before = await conn.run_sync(live.borrowing_list_marker, 0)
        lending_list_before = await conn.run_sync(live.lending_list_marker, 0)
        assert await conn.run_sync(live.borrowing_marker, 10**9) is None
    later = NOW + timedelta(hours=1)
    async with db.begin_write(engine) as conn:
        marked = await conn.run_sync(mark_printed_step("borrowing", [first, 10**9], "staff:jo", later))
        await conn.run_sync(mark_printed_step("lending", [lending], "staff:jo", later))
    assert marked == [first]
    async with engine.connect() as conn:
        row = (await conn.execute(select(br.c.slip_printed_at, br.c.version, br.c.updated_at)
                                  .where(br.c.id == first))).one()
        assert row.slip_printed_at == later and row.version == 1 and row.updated_at == NOW
        assert (await conn.execute(select(lr.c.slip_printed_at).where(lr.c.id == lending))).scalar() == later
        entries = (await conn.execute(select(history_t.c.request_id, history_t.c.lending_id, history_t.c.actor,
                                             history_t.c.event, history_t.c.detail).order_by(history_t.c.id))).all()
        assert [(e.request_id, e.lending_id, e.actor, e.event, e.detail["text"]) for e in entries] == [
            (first, None, "staff:jo", "slip_printed", "book strap printed"),
            (None, lending, "staff:jo", "slip_printed", "pull slip printed")]
        after = {rid: await conn.run_sync(live.borrowing_marker, rid) for rid in (first, second)}
        assert after[first] != before[first] and after[second] == before[second]
        assert await conn.run_sync(live.borrowing_list_marker, list_before) > list_before
        assert await conn.run_sync(live.lending_list_marker, lending_list_before) > lending_list_before
        newest = await conn.run_sync(live.lending_list_marker, 0)
        assert await conn.run_sync(live.lending_list_marker, newest) == newest  # nothing newer
