"""Statements for a whole group of rows (the inbound path's group commit), on both databases:
`update_requests` (one version-checked statement per set of columns; on PostgreSQL arrays with
`unnest`, gateway/store/arrays.py) and `insert_raw_messages` store what one statement per row
would, and see a row another transaction moved on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.core import Create, RequestDetails, decide
from gateway.service.borrowing_rows import StateCache, load_for_steps
from gateway.service.snapshot import to_json
from gateway.store import db
from gateway.store import queries as q

NOW = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


async def _write(engine: AsyncEngine, fn: Any, *args: Any, **kwargs: Any) -> Any:
    async with db.begin_write(engine) as conn:
        return await conn.run_sync(fn, *args, **kwargs)


async def _requests(engine: AsyncEngine, n: int) -> list[int]:
    def step(conn: Any) -> list[int]:
        return [q.insert_request(conn, {"requester": f"p{i}", "external_id": f"BR-{i}", "title": f"Book {i}",
                                        "extra": {"state": {"n": i}}}, now=NOW) for i in range(n)]
    return await _write(engine, step)


async def _load(engine: AsyncEngine, request_id: int) -> dict[str, Any]:
    async with engine.connect() as conn:
        return await conn.run_sync(q.load_request, request_id)


async def test_group_update_sets_each_request_to_its_values_and_version(engine: AsyncEngine) -> None:
    a, b, c = await _requests(engine, 3)
    updates = [  # two sets of columns; values of several types, a NULL among them
        q.RequestUpdate(c, 1, 3, {"status": "SHIPPED", "due_date": LATER, "needs_attention": True,
                                  "extra": {"state": {"n": "c"}, "k": [1, None]}}, LATER),
        q.RequestUpdate(a, 1, 2, {"status": "WILL_SUPPLY", "due_date": None, "needs_attention": False,
                                  "extra": {"state": {"n": "a"}}}, LATER),
        q.RequestUpdate(b, 1, 2, {}, LATER),  # only the version moves on
    ]
    assert await _write(engine, q.update_requests, updates)
    got = {rid: await _load(engine, rid) for rid in (a, b, c)}
    assert [got[rid]["version"] for rid in (a, b, c)] == [2, 2, 3]
    assert (got[c]["status"], got[c]["due_date"], got[c]["needs_attention"]) == ("SHIPPED", LATER, True)
    assert got[c]["extra"] == {"state": {"n": "c"}, "k": [1, None]}
    assert (got[a]["status"], got[a]["due_date"], got[a]["extra"]) == ("WILL_SUPPLY", None, {"state": {"n": "a"}})
    assert (got[b]["status"], got[b]["extra"]) == ("CREATED", {"state": {"n": 1}})
    assert all(got[rid]["updated_at"] == LATER for rid in (a, b, c))


async def test_group_update_refuses_a_request_another_transaction_moved_on(engine: AsyncEngine) -> None:
    a, b = await _requests(engine, 2)
    assert await _write(engine, q.update_request, b, 1, {"title": "moved on"}, now=NOW)

    def step(conn: Any) -> bool:
        ok = q.update_requests(conn, [q.RequestUpdate(a, 1, 2, {"title": "x"}, LATER),
                                      q.RequestUpdate(b, 1, 2, {"title": "x"}, LATER)])
        if not ok:
            raise RuntimeError("conflict")  # as the writer does: the whole step rolls back
        return ok

    with pytest.raises(RuntimeError, match="conflict"):
        await _write(engine, step)
    assert [(r["title"], r["version"]) for r in [await _load(engine, a), await _load(engine, b)]] == [
        ("Book 0", 1), ("moved on", 2)]
    assert not await _write(engine, q.update_requests, [q.RequestUpdate(a + 999, 1, 2, {}, LATER)])


async def test_group_update_waits_for_a_concurrent_one_and_then_sees_it(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("concurrent writers are a PostgreSQL matter (SQLite has one writer)")
    a, b = await _requests(engine, 2)
    first_done = asyncio.Event()
    async with db.begin_write(engine) as first:  # holds both rows until it commits
        assert await first.run_sync(q.update_requests, [q.RequestUpdate(b, 1, 2, {"title": "first"}, NOW),
                                                        q.RequestUpdate(a, 1, 2, {"title": "first"}, NOW)])

        async def second() -> bool:  # the same rows, listed in the other order
            result = await _write(engine, q.update_requests, [q.RequestUpdate(a, 1, 2, {"title": "second"}, LATER),
                                                              q.RequestUpdate(b, 1, 2, {"title": "second"}, LATER)])
            assert first_done.is_set(), "the second update did not wait for the first to commit"
            return result

        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.3)
        assert not waiting.done()
        first_done.set()
    assert await asyncio.wait_for(waiting, 10) is False  # it saw version 2, not the 1 it expected
    assert [(r["title"], r["version"]) for r in [await _load(engine, a), await _load(engine, b)]] == [
        ("first", 2), ("first", 2)]


def _key(n: int) -> q.MessageKey:
    return q.MessageKey("in", "ISIL:P", "supplyingAgencyMessage", "ISIL:US", f"BR-{n}",
                        "2026-01-01T00:00:00.000Z", f"{n:064d}")


async def test_raw_message_group_stores_the_new_ones_and_skips_those_stored_before(engine: AsyncEngine) -> None:
    first = [(_key(n), f"<m n='{n}'/>".encode(), NOW, b"<ok/>") for n in (1, 2)]
    stored = await _write(engine, q.insert_raw_messages, first)
    assert set(stored) == {_key(1), _key(2)} and len(set(stored.values())) == 2
    again = [(_key(2), b"<m/>", LATER, b"<other/>"), (_key(3), b"<m n='3'/>", LATER, None)]
    stored_again = await _write(engine, q.insert_raw_messages, again)
    assert list(stored_again) == [_key(3)]
    async with engine.connect() as conn:
        kept = await conn.run_sync(q.find_raw_message, _key(2))
        third = await conn.run_sync(q.find_raw_message, _key(3))
    assert (kept["id"], kept["body"], kept["confirmation"], kept["received_at"]) == (
        stored[_key(2)], b"<m n='2'/>", b"<ok/>", NOW)
    assert (third["confirmation"], third["received_at"], third["body_sha256"]) == (
        None, LATER, q.body_sha256(b"<m n='3'/>"))
    assert await _write(engine, q.insert_raw_messages, []) == {}


async def test_requests_of_a_group_load_by_external_id(engine: AsyncEngine) -> None:
    ids = await _requests(engine, 3)
    state = decide(None, Create(at=NOW, by="staff", details=RequestDetails(requester="p", title="T",
                                                                            pickup_location="Main"))).state
    updates = [q.RequestUpdate(rid, 1, 2, {"extra": {"state": to_json(state), "k": rid}}, NOW) for rid in ids]
    assert await _write(engine, q.update_requests, updates)
    cache = StateCache()
    async with engine.connect() as conn:
        found = await conn.run_sync(load_for_steps, ["BR-2", "BR-0", "BR-0", "nope"], cache)
    assert sorted(found) == ["BR-0", "BR-2"]
    loaded = found["BR-2"]
    assert (loaded.id, loaded.version, loaded.state, loaded.extra) == (ids[2], 2, state, {"k": ids[2]})


async def test_group_statement_writes_every_part_and_checks_versions(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("group statements are PostgreSQL's (SQLite writes a statement per table)")
    from gateway.store.arrays import GroupWrite
    from gateway.store.models import history_t, rota_entries_t

    a, b = await _requests(engine, 2)
    await _write(engine, q.insert_rota_entries, a, ["ISIL:P1", "ISIL:P2"])

    def step(conn: Any, version_of_b: int) -> bool:
        write = GroupWrite()
        q.update_requests(conn, [q.RequestUpdate(a, 1, 2, {"status": "WILL_SUPPLY"}, LATER),
                                 q.RequestUpdate(b, version_of_b, version_of_b + 1, {}, LATER)], into=write)
        write.update_where(rota_entries_t, ("request_id", "agency"),
                           [{"request_id": a, "agency": "ISIL:P2", "state": "active", "sent_at": LATER}])
        write.insert(history_t, [  # the second row leaves `at` to its column default
            {"request_id": a, "at": LATER, "actor": "x", "event": "e1", "detail": {"k": [1]}},
            {"request_id": b, "actor": "y", "event": "e2"}])
        if not write.run(conn):
            raise RuntimeError("conflict")
        return True

    with pytest.raises(RuntimeError, match="conflict"):  # b is at version 1, not 7: all rolled back
        await _write(engine, step, 7)
    assert (await _load(engine, a))["status"] == "CREATED"
    assert await _write(engine, step, 1)
    got_a, got_b = await _load(engine, a), await _load(engine, b)
    assert (got_a["status"], got_a["version"], got_b["version"]) == ("WILL_SUPPLY", 2, 2)
    assert [(e["agency"], e["state"], e["sent_at"]) for e in got_a["rota"]] == [
        ("ISIL:P1", "pending", None), ("ISIL:P2", "active", LATER)]
    async with engine.connect() as conn:
        rows = (await conn.execute(history_t.select().order_by(history_t.c.id))).mappings().all()
    assert [(r["request_id"], r["event"], r["detail"]) for r in rows] == [(a, "e1", {"k": [1]}), (b, "e2", None)]
    assert rows[0]["at"] == LATER and abs(rows[1]["at"] - datetime.now(UTC)) < timedelta(minutes=5)
