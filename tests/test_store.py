"""The store on SQLite and PostgreSQL: migrations match the models, every table round-trips,
idempotency, optimistic concurrency, outbox order, savepoints, time zones."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, delete, func, insert, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from gateway.store import db
from gateway.store import queries as q
from gateway.store.models import (
    Attachment,
    Base,
    BorrowingRequest,
    GeneralMessage,
    History,
    Note,
    Parameter,
    ReceivedItem,
    RotaEntry,
    compared,
    raw_messages_t,
)

NOW = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
CEST = timezone(timedelta(hours=2))
US = "ISIL:US-OURS"
P1, P2, P3 = "ISIL:DE-P1", "ISIL:DK-P2", "ISIL:NO-P3"


def _is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


async def _write(engine: AsyncEngine, fn: Any, *args: Any, **kwargs: Any) -> Any:
    async with db.begin_write(engine) as conn:
        return await conn.run_sync(fn, *args, **kwargs)


async def _read(engine: AsyncEngine, fn: Any, *args: Any, **kwargs: Any) -> Any:
    async with engine.connect() as conn:
        return await conn.run_sync(fn, *args, **kwargs)


def _request_values(**over: Any) -> dict[str, Any]:
    """Every field of the borrowing request form."""
    values: dict[str, Any] = {
        "external_id": "REQ-0001",
        "status": "CREATED",
        "previous_status": None,
        "needs_attention": True,
        "attention_reason": "no partner answered",
        "active_partner": P1,
        "title": "Die Blechtrommel",
        "author": "Grass, Günter",
        "title_of_component": "Chapter 1: Der weite Rock",
        "author_of_component": "Grass",
        "isbn": "9783423118217",
        "issn": "1234-5679",
        "oclc_number": "ocm12345678",
        "other_identifiers": [{"type": "LCCN", "value": "59012345"}],
        "publisher": "dtv",
        "publication_date": "1959",
        "edition": "3. Aufl.",
        "volume": "1",
        "issue": "2",
        "pages": "1-42",
        "requester": "patron-42",
        "requester_name": "Åsa Ødegård",
        "owner": "MAIN",
        "service_type": "Copy",
        "format": "Digital",
        "requested_media": "book",
        "allow_other_format": True,
        "preferred_send_method": "mail",
        "language": "ger",
        "needed_by": date(2024, 6, 1),
        "delivery_location": "home",
        "pickup_location": "MAIN-DESK",
        "reading_room_only": True,
        "willing_to_pay": True,
        "needs_patron_information": True,
        "agree_to_copyright_terms": True,
        "maximum_fee": Decimal("12.50"),
        "currency": "EUR",
        "level_of_service": "rush",
        "request_note": "Please hurry.\nThanks",
        "due_date": datetime(2024, 7, 1, 12, tzinfo=UTC),
        "extra": {"counter": 0, "nested": {"a": [1, 2]}},
    }
    values.update(over)
    return values


def _key(body: bytes, **over: Any) -> q.MessageKey:
    fields: dict[str, Any] = {
        "direction": "in",
        "partner_agency": P1,
        "kind": "supplyingAgencyMessage",
        "requesting_agency": US,
        "requesting_agency_request_id": "REQ-0001",
        "message_timestamp": "2024-05-06T07:08:09Z",
    }
    fields.update(over)
    return q.MessageKey(**fields, content_sha256=hashlib.sha256(body).hexdigest())


# --- migrations -------------------------------------------------------------------------------


def _diffs(sync_conn: Any, metadata: MetaData) -> list[Any]:
    ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True, "include_object": compared})
    return compare_metadata(ctx, metadata)


async def test_migrated_schema_matches_models(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.run_sync(_diffs, Base.metadata) == []


async def test_schema_comparison_is_not_vacuous(engine: AsyncEngine) -> None:
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        copy = table.to_metadata(changed)
        if table.name == "notes":
            copy.append_column(Column("extra_column", Integer))
    async with engine.connect() as conn:
        diffs = await conn.run_sync(_diffs, changed)
    assert [d[0] for d in diffs] == ["add_column"]


async def test_migrate_is_at_head_and_idempotent(engine: AsyncEngine) -> None:
    script = ScriptDirectory.from_config(db.alembic_config())
    head = script.get_current_head()
    assert script.get_heads() == [head]  # one line of migrations
    assert await db.current_revision(engine) == head
    await db.migrate_async(engine)  # again: nothing to do
    assert await db.current_revision(engine) == head


async def test_downgrade_to_base_and_back(engine: AsyncEngine) -> None:
    from alembic import command

    await db._run_alembic_async(engine, lambda cfg: command.downgrade(cfg, "base"))
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(c.dialect.get_table_names(c)))
    assert tables <= {"alembic_version"}
    await db.migrate_async(engine)
    async with engine.connect() as conn:
        assert await conn.run_sync(_diffs, Base.metadata) == []


async def test_sync_migrate_from_url(db_url: str) -> None:
    assert await db.current_revision(db_url) is None
    await asyncio.to_thread(db.migrate, db_url)  # sync API, outside an event loop
    assert await db.current_revision(db_url) == db.head_revision()
    with pytest.raises(RuntimeError, match="migrate_async"):
        db.migrate(db_url)  # inside the running loop


# --- engines ------------------------------------------------------------------------------------


async def test_sqlite_connection_settings(engine: AsyncEngine) -> None:
    if not _is_sqlite(engine):
        pytest.skip("SQLite only")
    async with engine.connect() as conn:
        got = {p: (await conn.exec_driver_sql(f"PRAGMA {p}")).scalar()
               for p in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")}
    assert got == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1, "busy_timeout": 5000}


async def test_postgres_search_path_from_url(engine: AsyncEngine, db_url: str) -> None:
    if _is_sqlite(engine):
        pytest.skip("PostgreSQL only")
    async with engine.connect() as conn:
        assert (await conn.scalar(text("select current_schema()"))).startswith("gwtest_")
        assert await conn.scalar(
            text("select data_type from information_schema.columns where table_schema = "
                 "current_schema() and table_name = 'borrowing_requests' and column_name = 'extra'")
        ) == "jsonb"


def test_default_sqlite_url(tmp_path: Path) -> None:
    assert db.DEFAULT_SQLITE_URL == "sqlite+aiosqlite:///var/gateway.sqlite3"
    url = db.default_sqlite_url(tmp_path)
    assert url == f"sqlite+aiosqlite:///{tmp_path.resolve()}/var/gateway.sqlite3"
    assert db.is_sqlite(url) and not db.is_sqlite("postgresql+asyncpg://h/db")


async def test_make_engine_creates_sqlite_directory_and_picks_drivers(tmp_path: Path) -> None:
    eng = db.make_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'gw.sqlite3'}")
    try:
        assert eng.url.drivername == "sqlite+aiosqlite"
        assert (tmp_path / "a" / "b").is_dir()
        await db.migrate_async(eng)
        assert (tmp_path / "a" / "b" / "gw.sqlite3").exists()
    finally:
        await eng.dispose()
    pg = db.make_engine("postgresql://u@h/db?search_path=s1")
    assert pg.url.drivername == "postgresql+asyncpg" and "search_path" not in pg.url.query
    await pg.dispose()
    with pytest.raises(ValueError, match="unsupported database"):
        db.make_engine("mysql://u@h/db")


def test_sync_sqlite_engine_group_commit(tmp_path: Path) -> None:
    """The shape of the SQLite single writer: a sync engine in one thread, several steps in one
    transaction, each in a savepoint; a failing step rolls back alone."""
    url = f"sqlite:///{tmp_path / 'w.sqlite3'}"
    db.migrate(url)
    eng = db.make_sync_engine(url)
    try:
        body = b"<msg/>"
        with db.begin_write(eng) as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            rid = q.insert_request(conn, {"requester": "p"}, [P1], now=NOW)
            done = []
            for step in range(3):
                try:
                    with conn.begin_nested():
                        q.insert_raw_message(conn, _key(body), body, received_at=NOW)
                        q.insert_history(conn, {"request_id": rid, "at": NOW, "actor": "system",
                                                "event": f"step{step}"})
                    done.append(step)
                except IntegrityError:
                    pass
        assert done == [0]
        with eng.connect() as conn:
            assert [r.event for r in conn.execute(select(History.event))] == ["step0"]
    finally:
        eng.dispose()
    with pytest.raises(ValueError):
        db.make_sync_engine("postgresql://u@h/db")


# --- borrowing requests -------------------------------------------------------------------------


async def test_insert_and_load_request_with_rota(engine: AsyncEngine) -> None:
    values = _request_values()
    rota = [P1, {"agency": P2, "deadline_at": NOW + timedelta(days=3),
                 "extra": {"loan_conditions": ["LibraryUseOnly"]}}, P3]
    rid = await _write(engine, q.insert_request, values, rota, now=NOW)
    req = await _read(engine, q.load_request, rid)
    for name, value in values.items():
        assert req[name] == value, name
    assert req["version"] == 1 and req["created_at"] == req["updated_at"] == NOW
    assert [(e["position"], e["agency"], e["state"]) for e in req["rota"]] == [
        (1, P1, "pending"), (2, P2, "pending"), (3, P3, "pending")]
    assert req["rota"][1]["deadline_at"] == NOW + timedelta(days=3)
    assert [e["extra"] for e in req["rota"]] == [{}, {"loan_conditions": ["LibraryUseOnly"]}, {}]
    with pytest.raises(IntegrityError):  # a partner appears once per rota
        await _write(engine, q.insert_rota_entries, rid, [P2], first_position=4)
    assert await _read(engine, q.load_request_by_external_id, "REQ-0001") == req
    assert await _read(engine, q.load_request_by_external_id, "nope") is None
    assert await _read(engine, q.find_request_id, "REQ-0001") == rid
    assert await _read(engine, q.find_request_id, "nope") is None
    assert await _read(engine, q.load_request, rid + 1000) is None


async def test_request_defaults(engine: AsyncEngine) -> None:
    rid = await _write(engine, q.insert_request, {"requester": "p1"}, now=NOW)
    req = await _read(engine, q.load_request, rid)
    assert req["status"] == "CREATED"
    assert req["format"] == "Physical"
    assert req["delivery_location"] == "library"
    assert req["service_type"] == "Loan"
    assert req["needs_attention"] is False and req["allow_other_format"] is False
    assert req["extra"] == {} and req["rota"] == []


async def test_update_request_and_rota_entry(engine: AsyncEngine) -> None:
    rid = await _write(engine, q.insert_request, _request_values(), [P1, P2], now=NOW)
    req = await _read(engine, q.load_request, rid)
    later = NOW + timedelta(hours=1)

    def step(conn: Any) -> bool:
        ok = q.update_request(conn, rid, req["version"], {"status": "REQUEST_SENT",
                                                           "previous_status": "CREATED"}, now=later)
        q.update_rota_entry(conn, req["rota"][0]["id"], {"state": "active", "sent_at": later,
                                                          "last_status": "RequestReceived"})
        return ok

    assert await _write(engine, step)
    got = await _read(engine, q.load_request, rid)
    assert (got["status"], got["previous_status"], got["version"]) == ("REQUEST_SENT", "CREATED", 2)
    assert got["updated_at"] == later and got["created_at"] == NOW
    assert (got["rota"][0]["state"], got["rota"][0]["sent_at"]) == ("active", later)
    with pytest.raises(ValueError, match="managed"):
        await _write(engine, q.update_request, rid, 2, {"version": 7}, now=later)


async def test_optimistic_version_check_detects_lost_update(engine: AsyncEngine) -> None:
    rid = await _write(engine, q.insert_request, _request_values(), now=NOW)
    a = await _read(engine, q.load_request, rid)
    b = await _read(engine, q.load_request, rid)
    assert a["version"] == b["version"] == 1
    assert await _write(engine, q.update_request, rid, a["version"], {"title": "A"}, now=NOW)
    # b read version 1 too; its write would overwrite A's: refused.
    assert not await _write(engine, q.update_request, rid, b["version"], {"title": "B"}, now=NOW)
    got = await _read(engine, q.load_request, rid)
    assert (got["title"], got["version"]) == ("A", 2)
    assert not await _write(engine, q.update_request, rid + 99, 1, {"title": "C"}, now=NOW)


@pytest.mark.parametrize("mode", ["separate_transactions", "one_transaction"])
async def test_concurrent_read_modify_write_loses_nothing(engine: AsyncEngine, mode: str) -> None:
    """20 tasks each add 1 to a counter: read, compute, write with the version check, retry on
    conflict. `separate_transactions` (a staff form: read, later save): all read the same version
    first (a barrier), so conflicts are certain. `one_transaction` (a service step): on SQLite
    `begin_write` serialises the steps; on PostgreSQL a conflicting UPDATE matches no row."""
    rid = await _write(engine, q.insert_request, _request_values(), now=NOW)
    barrier = asyncio.Barrier(20)
    conflicts = 0

    def step(conn: Any) -> bool:
        req = q.load_request(conn, rid)
        extra = {**req["extra"], "counter": req["extra"]["counter"] + 1}
        return q.update_request(conn, rid, req["version"], {"extra": extra}, now=NOW)

    async def bump() -> None:
        nonlocal conflicts
        for attempt in range(100):
            if mode == "one_transaction":
                ok = await _write(engine, step)
            else:
                req = await _read(engine, q.load_request, rid)
                if attempt == 0:
                    await barrier.wait()
                extra = {**req["extra"], "counter": req["extra"]["counter"] + 1}
                ok = await _write(engine, q.update_request, rid, req["version"], {"extra": extra},
                                  now=NOW)
            if ok:
                return
            conflicts += 1
        raise AssertionError("gave up after 100 conflicts")

    await asyncio.gather(*(bump() for _ in range(20)))
    got = await _read(engine, q.load_request, rid)
    assert got["extra"]["counter"] == 20
    assert got["version"] == 21
    if mode == "separate_transactions":
        assert conflicts >= 19
    elif _is_sqlite(engine):
        assert conflicts == 0


async def test_deleting_a_request_cascades(engine: AsyncEngine) -> None:
    rid = await _write(engine, q.insert_request, _request_values(), [P1, P2], now=NOW)

    def add_children(conn: Any) -> None:
        q.insert_history(conn, {"request_id": rid, "at": NOW, "actor": "system", "event": "x"})
        q.insert_outbox(conn, request_id=rid, partner_agency=P1, partner_url="http://p1/",
                        kind="request", body=b"<x/>", now=NOW)

    await _write(engine, add_children)
    async with db.begin_write(engine) as conn:
        await conn.execute(delete(BorrowingRequest.__table__).where(BorrowingRequest.id == rid))
    async with engine.connect() as conn:
        for model in (RotaEntry, History):
            assert await conn.scalar(select(func.count()).select_from(model)) == 0
        assert await conn.scalar(text("select count(*) from outbox")) == 0


# --- every table round-trips --------------------------------------------------------------------


def _sample_rows(conn: Any) -> dict[str, dict[str, Any]]:
    """A full row for every table (parents inserted first); the values to compare."""
    rid = q.insert_request(conn, _request_values(), now=NOW)
    body = b'<?xml version="1.0"?><ISO18626Message>\xc3\xa6</ISO18626Message>'
    raw_id = q.insert_raw_message(conn, _key(body), body, received_at=NOW, confirmation=b"<c/>")
    lid = q.insert_lending(conn, {"requesting_agency": P1, "requesting_agency_request_id": "L1",
                                  "supplying_agency": US, "status": "RequestReceived"}, now=NOW)
    t = NOW + timedelta(minutes=5)
    return {
        "borrowing_requests": _request_values(external_id="REQ-0002", created_at=NOW,
                                              updated_at=t, version=4, slip_printed_at=t),
        "rota_entries": {"request_id": rid, "position": 4, "agency": P2, "state": "rejected",
                         "last_status": "Unfilled", "last_reason": "NotHeld",
                         "last_answer": "not on shelf", "supplying_agency_request_id": "S-9",
                         "sent_at": t, "deadline_at": t + timedelta(days=2),
                         "status_request_sent_at": t + timedelta(days=1),
                         "extra": {"confirmed_at": t.isoformat()}},
        "lending_requests": {"requesting_agency": P2, "requesting_agency_request_id": "L2",
                             "supplying_agency": US, "status": "WILL_SUPPLY",
                             "previous_status": "NEW", "needs_attention": True, "title": "T",
                             "author": "A", "service_type": "Loan", "due_date": t,
                             "deadline_at": t + timedelta(days=3), "raw_request_id": raw_id, "extra": {"k": "v"},
                             "slip_printed_at": t,
                             "created_at": NOW, "updated_at": t, "version": 3},
        "raw_messages": {**_key(b"<other/>", direction="out", partner_agency=P2).as_values(),
                         "body": b"<other/>", "body_sha256": hashlib.sha256(b"<other/>").hexdigest(),
                         "received_at": t, "confirmation": None},
        "history": {"request_id": rid, "lending_id": lid, "at": t, "actor": "staff:jo",
                    "event": "status", "from_status": "CREATED", "to_status": "REQUEST_SENT",
                    "detail": {"warnings": ["alma: no colon in offset"], "n": 1.5},
                    "raw_message_id": raw_id},
        "general_messages": {"request_id": rid, "lending_id": None, "direction": "in",
                             "partner_agency": P1, "at": t, "actor": "partner", "text": "Hej ✓ #seq:2#",
                             "raw_message_id": raw_id,
                             "markers": {"seq": 2, "last_seq": None, "flags": [], "updated_fields": {},
                                         "cluster_id": None, "text": "Hej ✓"},
                             "read_at": t},
        "notes": {"request_id": None, "lending_id": lid, "created_at": t, "actor": "staff:jo",
                  "text": "call the patron"},
        "received_items": {"request_id": rid, "barcode": "3901234", "description": "vol. 1",
                           "received_at": t, "due_date": t + timedelta(days=28),
                           "actor": "staff:jo", "note": "damaged corner"},
        "attachments": {"request_id": rid, "lending_id": None, "filename": "scan.pdf",
                        "media_type": "application/pdf", "size": 5, "content": b"%PDF\x00",
                        "created_at": t, "actor": "staff:jo"},
        "parameters": {"request_id": rid, "key": "copyright_clause", "value": "US-CCG"},
        "outbox": {"request_id": None, "lending_id": lid, "partner_agency": P1,
                   "partner_url": "https://p1.example/iso18626", "seq": 7,
                   "kind": "supplyingAgencyMessage", "body": b"<s/>", "state": "failed",
                   "attempts": 9, "unknown_outcomes": 2, "next_attempt_at": t, "last_error": "HTTP 503",
                   "created_at": NOW, "delivered_at": None, "raw_message_id": raw_id},
        "seen_signatures": {"signature": "sha256=" + "ab" * 32, "partner_agency": P1, "status": 200,
                            "seen_at": t, "expires_at": NOW},
        "staff_accounts": {"username": "jo", "display_name": "Jo Ølsen", "role": "staff",
                           "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", "disabled": True,
                           "created_at": NOW, "updated_at": t, "last_sign_in_at": t},
        "sign_in_throttles": {"username": "jo", "failures": 3, "window_started_at": NOW, "locked_until": t},
        "audit_budget": {"source": "192.0.2.7", "window_start": NOW, "used": 61},
        "staff_views": {"username": "jo", "name": "Needs attention ✓", "query": "needs_attention=true&sort=title",
                        "created_at": t},
        "staff_preferences": {"username": "jo", "list_query": "status=CREATED", "updated_at": t},
    }


@pytest.mark.parametrize("table_name", sorted(Base.metadata.tables))
async def test_every_table_round_trips(engine: AsyncEngine, table_name: str) -> None:
    async with db.begin_write(engine) as conn:
        values = (await conn.run_sync(_sample_rows))[table_name]
        table = Base.metadata.tables[table_name]
        new_id = (await conn.execute(insert(table).values(values))).inserted_primary_key[0]
    async with engine.connect() as conn:
        row = (await conn.execute(select(table).where(table.c.id == new_id))).one()._mapping
    assert set(values) == set(table.c.keys()) - {"id"}  # the sample sets every column
    for name, value in values.items():
        assert row[name] == value, name
        if isinstance(value, datetime):
            assert row[name].tzinfo is UTC, name


def test_sample_rows_cover_every_table() -> None:
    assert set(Base.metadata.tables) == {
        "borrowing_requests", "rota_entries", "lending_requests", "raw_messages", "history",
        "general_messages", "notes", "received_items", "attachments", "parameters", "outbox",
        "seen_signatures", "staff_accounts", "sign_in_throttles", "audit_budget", "staff_views",
        "staff_preferences"}


async def test_orm_round_trip_of_all_tabs_with_version_check(engine: AsyncEngine) -> None:
    async with AsyncSession(engine, expire_on_commit=False) as s:
        req = BorrowingRequest(**_request_values())
        req.rota = [RotaEntry(position=1, agency=P1), RotaEntry(position=2, agency=P2)]
        req.history = [History(at=NOW, actor="system", event="created", to_status="CREATED")]
        req.parameters = [Parameter(key="k", value="v")]
        req.general_messages = [GeneralMessage(direction="out", partner_agency=P1, at=NOW,
                                               text="hello")]
        req.notes = [Note(created_at=NOW, actor="staff:jo", text="note")]
        req.received_items = [ReceivedItem(barcode="b1", received_at=NOW)]
        req.attachments = [Attachment(filename="a.txt", media_type="text/plain", size=2,
                                      content=b"hi", created_at=NOW)]
        s.add(req)
        await s.commit()
        rid = req.id

    tabs = ("rota", "history", "parameters", "general_messages", "notes", "received_items",
            "attachments")
    async with AsyncSession(engine, expire_on_commit=False) as s:
        got = await s.scalar(select(BorrowingRequest).where(BorrowingRequest.id == rid)
                             .options(*(selectinload(getattr(BorrowingRequest, t)) for t in tabs)))
        assert got is not None
        assert [e.agency for e in got.rota] == [P1, P2]
        assert got.needed_by == date(2024, 6, 1) and got.version == 1
        assert {t: len(getattr(got, t)) for t in tabs} == {
            "rota": 2, "history": 1, "parameters": 1, "general_messages": 1, "notes": 1,
            "received_items": 1, "attachments": 1}
        assert await got.attachments[0].awaitable_attrs.content == b"hi"  # deferred column
        got.title = "edited"
        got.extra["touched"] = True  # top-level mutation is tracked
        await s.commit()
        assert got.version == 2

    # Two staff pages show the same request, both edit it: the second save is refused.
    writer = db.write_engine(engine)
    async with AsyncSession(writer, expire_on_commit=False) as s1, \
            AsyncSession(writer, expire_on_commit=False) as s2:
        r1 = await s1.get(BorrowingRequest, rid)
        await s1.commit()  # the page is rendered; its read transaction ends
        r2 = await s2.get(BorrowingRequest, rid)
        await s2.commit()
        r1.title = "one"
        await s1.commit()
        r2.title = "two"
        with pytest.raises(StaleDataError):
            await s2.commit()
    final = await _read(engine, q.load_request, rid)
    assert (final["title"], final["version"], final["extra"]["touched"]) == ("one", 3, True)


# --- raw messages and idempotency ---------------------------------------------------------------


async def test_raw_message_unique_key_refuses_duplicate(engine: AsyncEngine) -> None:
    body = b"<ISO18626Message>supplyingAgencyMessage</ISO18626Message>"
    key = _key(body)
    first = await _write(engine, q.insert_raw_message, key, body, received_at=NOW,
                         confirmation=b"<confirmation/>")
    with pytest.raises(IntegrityError):
        await _write(engine, q.insert_raw_message, key, body, received_at=NOW)
    assert await _write(engine, q.insert_raw_message_if_new, key, body, received_at=NOW) is None

    found = await _read(engine, q.find_raw_message, key)
    assert found is not None and found["id"] == first
    assert (found["body"], found["confirmation"]) == (body, b"<confirmation/>")

    # Any difference in the key is another message.
    for other in (_key(body, message_timestamp="2024-05-06T07:08:10Z"),
                  _key(body, direction="out"),
                  _key(body, partner_agency=P2),
                  _key(body, requesting_agency_request_id="REQ-0002")):
        assert await _read(engine, q.find_raw_message, other) is None
        assert await _write(engine, q.insert_raw_message_if_new, other, body, received_at=NOW)
    body2 = body + b" "
    assert await _write(engine, q.insert_raw_message_if_new, _key(body2), body2, received_at=NOW)


async def test_raw_message_key_with_nulls_never_matches(engine: AsyncEngine) -> None:
    body = b"not xml"
    key = _key(body, kind=None, requesting_agency=None, requesting_agency_request_id=None,
               message_timestamp=None)
    a = await _write(engine, q.insert_raw_message, key, body, received_at=NOW)
    b = await _write(engine, q.insert_raw_message, key, body, received_at=NOW)
    assert a != b
    assert await _read(engine, q.find_raw_message, key) is None
    async with engine.connect() as conn:  # the store describes the bytes itself: the key cannot disagree
        stored = (await conn.execute(select(raw_messages_t.c.body_sha256).where(raw_messages_t.c.id == a))).scalar()
    assert stored == hashlib.sha256(body).hexdigest()


async def test_set_raw_confirmation(engine: AsyncEngine) -> None:
    body = b"<m/>"
    rid = await _write(engine, q.insert_raw_message, _key(body), body, received_at=NOW)
    await _write(engine, q.set_raw_confirmation, rid, b"<ok/>")
    assert (await _read(engine, q.find_raw_message, _key(body)))["confirmation"] == b"<ok/>"


async def test_failed_step_rolls_back_alone_in_a_savepoint(engine: AsyncEngine) -> None:
    """Group commit: steps share a transaction, each in a savepoint; a duplicate message
    (IntegrityError) undoes only its own step, and the others commit."""
    rid = await _write(engine, q.insert_request, _request_values(), now=NOW)

    def batch(conn: Any) -> list[str]:
        outcomes = []
        for step, body in (("a", b"<one/>"), ("b", b"<one/>"), ("c", b"<two/>")):
            try:
                with conn.begin_nested():
                    q.insert_history(conn, {"request_id": rid, "at": NOW, "actor": "system",
                                            "event": step})
                    q.insert_raw_message(conn, _key(body), body, received_at=NOW)
                outcomes.append(step)
            except IntegrityError:
                outcomes.append(f"{step}: rolled back")
        return outcomes

    assert await _write(engine, batch) == ["a", "b: rolled back", "c"]
    async with engine.connect() as conn:
        events = (await conn.execute(select(History.event).order_by(History.id))).scalars().all()
        assert events == ["a", "c"]
        assert await conn.scalar(text("select count(*) from raw_messages")) == 2


# --- outbox -------------------------------------------------------------------------------------


async def test_outbox_sequence_order_and_delivery(engine: AsyncEngine) -> None:
    rid = await _write(engine, q.insert_request, _request_values(), [P1, P2], now=NOW)
    lid = await _write(engine, q.insert_lending,
                       {"requesting_agency": P3, "requesting_agency_request_id": "X1",
                        "supplying_agency": US, "status": "RequestReceived"}, now=NOW)

    def queue(conn: Any) -> dict[str, int]:
        ids = {}
        for name, partner, kw in (("r1", P1, {"request_id": rid}), ("r2", P1, {"request_id": rid}),
                                  ("r3", P2, {"request_id": rid}), ("l1", P3, {"lending_id": lid}),
                                  ("l2", P3, {"lending_id": lid})):
            ids[name] = q.insert_outbox(conn, partner_agency=partner, partner_url=f"http://{name}/",
                                        kind="request", body=name.encode(), now=NOW, **kw)
        return ids

    ids = await _write(engine, queue)
    async with engine.connect() as conn:
        seqs = dict((await conn.execute(text("select id, seq from outbox"))).all())
    assert [seqs[ids[n]] for n in ("r1", "r2", "r3", "l1", "l2")] == [1, 2, 1, 1, 2]

    # Only the first row per (request, partner) is due; nothing is due before its time.
    assert await _read(engine, q.fetch_due_outbox, now=NOW - timedelta(seconds=1)) == []
    due = await _read(engine, q.fetch_due_outbox, now=NOW)
    assert [r["id"] for r in due] == [ids["r1"], ids["r3"], ids["l1"]]
    assert due[0]["body"] == b"r1" and due[0]["state"] == "pending"

    # Claiming is exclusive; a sending row still holds back its successors.
    assert await _write(engine, q.claim_outbox, [ids["r1"], ids["r3"]]) == sorted(
        [ids["r1"], ids["r3"]])
    assert await _write(engine, q.claim_outbox, [ids["r1"]]) == []
    assert [r["id"] for r in await _read(engine, q.fetch_due_outbox, now=NOW)] == [ids["l1"]]

    # r1 delivered -> r2 becomes due. r3 fails, retried later in a zone other than UTC.
    later = NOW + timedelta(minutes=1)
    assert await _write(engine, q.mark_outbox_delivered, ids["r1"], now=later)
    assert not await _write(engine, q.mark_outbox_delivered, ids["r1"], now=later)
    retry_at = (NOW + timedelta(minutes=10)).astimezone(CEST)
    assert await _write(engine, q.mark_outbox_retry, ids["r3"], error="HTTP 503",
                        next_attempt_at=retry_at)
    due = await _read(engine, q.fetch_due_outbox, now=later.astimezone(CEST))
    assert [r["id"] for r in due] == [ids["r2"], ids["l1"]]
    due = await _read(engine, q.fetch_due_outbox, now=retry_at, limit=10)
    assert [r["id"] for r in due] == [ids["r2"], ids["l1"], ids["r3"]]
    r3 = next(r for r in due if r["id"] == ids["r3"])
    assert (r3["attempts"], r3["last_error"], r3["next_attempt_at"]) == (1, "HTTP 503", retry_at)

    # Give up on r3; a crash leaves l1 sending, start-up puts it back.
    await _write(engine, q.claim_outbox, [ids["r3"], ids["l1"]])
    assert await _write(engine, q.mark_outbox_retry, ids["r3"], error="gave up",
                        next_attempt_at=None)
    assert len(await _write(engine, q.release_outbox_leases, now=retry_at, expired_only=False)) == 1
    due = await _read(engine, q.fetch_due_outbox, now=retry_at)
    assert [r["id"] for r in due] == [ids["r2"], ids["l1"]]
    async with engine.connect() as conn:
        states = dict((await conn.execute(text("select id, state from outbox"))).all())
    assert states[ids["r1"]] == "delivered" and states[ids["r3"]] == "failed"

    with pytest.raises(ValueError):
        await _write(engine, q.insert_outbox, partner_agency=P1, partner_url="u", kind="k",
                     body=b"", now=NOW)


# --- lending requests ---------------------------------------------------------------------------


async def test_lending_request_key_is_scoped_per_requesting_agency(engine: AsyncEngine) -> None:
    base = {"requesting_agency_request_id": "R-1", "supplying_agency": US,
            "status": "RequestReceived", "title": "T"}
    a = await _write(engine, q.insert_lending, {**base, "requesting_agency": P1}, now=NOW)
    b = await _write(engine, q.insert_lending, {**base, "requesting_agency": P2}, now=NOW)
    assert a != b
    with pytest.raises(IntegrityError):
        await _write(engine, q.insert_lending, {**base, "requesting_agency": P1}, now=NOW)
    found = await _read(engine, q.find_lending, P2, "R-1")
    assert found["id"] == b and found["version"] == 1 and found["extra"] == {}
    assert await _read(engine, q.find_lending, P3, "R-1") is None

    assert await _write(engine, q.update_lending, b, 1, {"status": "WILL_SUPPLY"}, now=NOW)
    assert not await _write(engine, q.update_lending, b, 1, {"status": "UNFILLED"}, now=NOW)
    got = await _read(engine, q.load_lending, b)
    assert (got["status"], got["version"]) == ("WILL_SUPPLY", 2)
    assert await _read(engine, q.load_lending, b + 100) is None


# --- time zones ---------------------------------------------------------------------------------


async def test_datetimes_are_timezone_aware_utc(engine: AsyncEngine) -> None:
    local = datetime(2024, 3, 31, 1, 30, tzinfo=CEST)  # 2024-03-30 23:30 UTC
    rid = await _write(engine, q.insert_request, _request_values(due_date=local),
                       [{"agency": P1, "sent_at": local}], now=NOW.astimezone(CEST))
    req = await _read(engine, q.load_request, rid)
    for name in ("due_date", "created_at", "updated_at"):
        assert req[name].tzinfo is UTC, name
    assert req["due_date"] == local and req["rota"][0]["sent_at"] == local
    assert req["due_date"].isoformat() == "2024-03-30T23:30:00+00:00"
    assert req["created_at"] == NOW

    async with AsyncSession(engine) as s:
        orm = await s.get(BorrowingRequest, rid)
        assert orm.due_date.tzinfo is UTC and orm.due_date == local

    # Ordering and comparison work across zones (SQLite stores UTC text in one fixed format).
    async with engine.connect() as conn:
        n = await conn.scalar(select(func.count()).select_from(BorrowingRequest)
                              .where(BorrowingRequest.due_date < datetime(2024, 3, 31, tzinfo=UTC)))
        m = await conn.scalar(select(func.count()).select_from(BorrowingRequest)
                              .where(BorrowingRequest.due_date < local.astimezone(CEST)))
    assert (n, m) == (1, 0)

    with pytest.raises(StatementError, match="naive datetime"):
        await _write(engine, q.update_request, rid, 1, {"due_date": datetime(2024, 1, 1)},
                     now=NOW)


async def test_default_timestamps_are_aware(engine: AsyncEngine) -> None:
    """The fallback defaults (ORM or Core without explicit times) are aware UTC too."""
    before = datetime.now(UTC)
    async with db.begin_write(engine) as conn:
        await conn.execute(insert(BorrowingRequest.__table__).values(requester="p"))
    async with engine.connect() as conn:
        created = await conn.scalar(select(BorrowingRequest.created_at))
    assert created.tzinfo is UTC and before <= created <= datetime.now(UTC)
