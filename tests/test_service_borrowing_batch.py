"""Inbound supplyingAgencyMessages applied as a group (SQLite and PostgreSQL).

The writer hands consecutive supplier messages to one `SupplierMessages.run_many`; each message
must still come out as if it had been a step of its own: in order, a failure alone, duplicates
answered with the first confirmation and applied once.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

import gateway.service.borrowing as borrowing_module
from gateway.core import AddNote, CancelRequest
from gateway.messages import decode
from gateway.messages.codes import ReasonForMessage, Status
from gateway.service.borrowing import BorrowingService
from gateway.service.writer import Writer
from gateway.store.models import borrowing_requests_t, general_messages_t, history_t, raw_messages_t

from test_service_borrowing import P1, Clock, details, make_ctx, rows, supplier_message

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
async def svc(engine):
    writer = Writer(engine)
    service = BorrowingService(writer, make_ctx(), Clock())
    yield service
    await writer.close()


async def new_request(svc, engine) -> tuple[int, str]:
    """A request in REQUEST_SENT at P1; (id, external id)."""
    rid = (await svc.create(details(), partners=(P1,))).request_id
    await svc.request_confirmed(rid, P1)
    ref = (await rows(engine, borrowing_requests_t, id=rid))[0]["external_id"]
    return rid, ref


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def will_supply(ref, minute=0):
    return supplier_message(ref, Status.WillSupply, reason=ReasonForMessage.RequestResponse, when=at(minute))


def notification(ref, minute, text="shelf checked"):
    return supplier_message(ref, Status.WillSupply, reason=ReasonForMessage.Notification, note=text, when=at(minute))


def loaned(ref, minute):
    return supplier_message(ref, Status.Loaned, when=at(minute), due_date=datetime(2027, 1, 1, tzinfo=timezone.utc))


async def in_one_batch(svc, bodies: list[bytes]) -> list:
    """Deliver `bodies` at once (one writer batch); each result is the decoded confirmation or
    the exception the step raised."""
    before = svc.writer.batches
    results = await asyncio.gather(*(svc.receive_supplier_message(decode(b), b) for b in bodies),
                                   return_exceptions=True)
    assert svc.writer.batches == before + 1, "the messages were meant to share one batch"
    return [r if isinstance(r, BaseException) else decode(r).message for r in results]


def status_of(reply) -> str:
    return reply.confirmation_header.message_status.value


async def count(engine, table, *where) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one()


async def test_messages_for_one_request_in_one_batch_apply_in_order(svc, engine):
    rid, ref = await new_request(svc, engine)
    other_id, other = await new_request(svc, engine)
    version = (await rows(engine, borrowing_requests_t, id=rid))[0]["version"]
    replies = await in_one_batch(svc, [will_supply(ref, 1), will_supply(other, 1), notification(ref, 2),
                                       loaned(ref, 3)])
    assert [status_of(r) for r in replies] == ["OK"] * 4
    request = (await rows(engine, borrowing_requests_t, id=rid))[0]
    assert request["status"] == "SHIPPED_PHYSICALLY"
    assert request["version"] == version + 3  # one per message, as three steps would have left it
    assert request["due_date"] == datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert request["extra"]["supplier_request_ids"] == {P1: "L-1"}
    assert (await rows(engine, borrowing_requests_t, id=other_id))[0]["status"] == "WILL_SUPPLY"
    history = [h for h in await rows(engine, history_t, request_id=rid) if h["raw_message_id"]]
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        ("REQUEST_SENT", "WILL_SUPPLY"), ("WILL_SUPPLY", "WILL_SUPPLY"), ("WILL_SUPPLY", "SHIPPED_PHYSICALLY")]
    raws = {r["id"]: r for r in await rows(engine, raw_messages_t)}
    assert [raws[h["raw_message_id"]]["message_timestamp"] for h in history] == [
        "2026-11-28T10:01:00Z", "2026-11-28T10:02:00Z", "2026-11-28T10:03:00Z"]
    assert all(r["confirmation"] for r in raws.values())
    notes = await rows(engine, general_messages_t, request_id=rid)
    assert [n["text"] for n in notes] == ["shelf checked"] and notes[0]["raw_message_id"] in raws
    rota = (await svc.writer.run(lambda conn: conn.execute(
        select(borrowing_module.rows.rota_entries_t).where(
            borrowing_module.rows.rota_entries_t.c.request_id == rid)).all()))
    assert [(r.agency, r.state, r.last_status) for r in rota] == [(P1, "supplied", "Loaned")]


async def test_a_refused_or_unknown_message_in_a_batch_is_answered_alone(svc, engine):
    rid, ref = await new_request(svc, engine)
    replies = await in_one_batch(svc, [
        supplier_message(ref, Status.Overdue, when=at(1)),  # illegal in REQUEST_SENT
        supplier_message("BR-NOPE", Status.WillSupply, when=at(1)),
        will_supply(ref, 2),
    ])
    assert [status_of(r) for r in replies] == ["ERROR", "ERROR", "OK"]
    assert "refused in status REQUEST_SENT" in replies[0].error_data[0].error_value
    assert "BR-NOPE" in replies[1].error_data[0].error_value
    assert (await rows(engine, borrowing_requests_t, id=rid))[0]["status"] == "WILL_SUPPLY"
    history = [h for h in await rows(engine, history_t, request_id=rid) if h["raw_message_id"]]
    assert [(h["event"], h["to_status"]) for h in history][0] == ("message_refused", "REQUEST_SENT")
    assert history[1]["to_status"] == "WILL_SUPPLY" and len(history) == 2
    assert await count(engine, raw_messages_t) == 3  # every message is kept, refused ones too


async def test_a_failing_step_fails_alone_and_its_neighbours_commit(svc, engine, monkeypatch):
    rid, ref = await new_request(svc, engine)
    bad_id = (await svc.create(details(edition="cursed"), partners=(P1,))).request_id
    await svc.request_confirmed(bad_id, P1)
    bad = (await rows(engine, borrowing_requests_t, id=bad_id))[0]["external_id"]
    real_decide = borrowing_module.decide

    def decide(state, event, policy):  # a bug that hits one request only
        if state.details.edition == "cursed":
            raise RuntimeError("boom")
        return real_decide(state, event, policy)

    monkeypatch.setattr(borrowing_module, "decide", decide)
    raws_before = await count(engine, raw_messages_t)
    replies = await in_one_batch(svc, [will_supply(ref, 1), will_supply(bad, 1), notification(ref, 2)])
    assert isinstance(replies[1], RuntimeError)
    assert [status_of(r) for r in (replies[0], replies[2])] == ["OK", "OK"]
    assert (await rows(engine, borrowing_requests_t, id=rid))[0]["status"] == "WILL_SUPPLY"
    assert (await rows(engine, borrowing_requests_t, id=bad_id))[0]["status"] == "REQUEST_SENT"
    assert await count(engine, raw_messages_t) == raws_before + 2  # nothing of the failed one
    assert await count(engine, history_t, history_t.c.request_id == bad_id, history_t.c.raw_message_id.is_not(None)) == 0


async def test_duplicates_in_one_batch_get_the_first_confirmation_and_apply_once(svc, engine):
    rid, ref = await new_request(svc, engine)
    version = (await rows(engine, borrowing_requests_t, id=rid))[0]["version"]
    body = will_supply(ref, 1)
    note = notification(ref, 2)
    raw = await asyncio.gather(*(svc.receive_supplier_message(decode(b), b) for b in (body, note, body, note)))
    assert raw[0] == raw[2] and raw[1] == raw[3] and raw[0] != raw[1]
    assert await count(engine, raw_messages_t) == 2
    assert (await rows(engine, borrowing_requests_t, id=rid))[0]["version"] == version + 2
    assert len(await rows(engine, general_messages_t, request_id=rid)) == 1


async def test_a_message_received_before_is_answered_from_the_store_within_a_batch(svc, engine):
    rid, ref = await new_request(svc, engine)
    _, other = await new_request(svc, engine)
    first = will_supply(ref, 1)
    stored = await svc.receive_supplier_message(decode(first), first)
    replies = await asyncio.gather(*(svc.receive_supplier_message(decode(b), b)
                                     for b in (notification(ref, 2), first, will_supply(other, 1))))
    assert replies[1] == stored  # the very bytes confirmed the first time
    assert [status_of(decode(r).message) for r in replies] == ["OK"] * 3
    history = [h for h in await rows(engine, history_t, request_id=rid) if h["raw_message_id"]]
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        ("REQUEST_SENT", "WILL_SUPPLY"), ("WILL_SUPPLY", "WILL_SUPPLY")]
    assert await count(engine, raw_messages_t) == 3


async def test_a_staff_step_between_messages_is_seen_by_the_next_message(svc, engine):
    """The decoded-state cache must not hide a change made by another kind of step."""
    rid, ref = await new_request(svc, engine)
    await in_one_batch(svc, [will_supply(ref, 1)])
    await svc.apply(rid, CancelRequest(at=svc.clock(), by="staff", reason="patron left"))
    reply = decode(await svc.receive_supplier_message(decode(body := notification(ref, 2)), body)).message
    assert status_of(reply) == "OK"
    request = (await rows(engine, borrowing_requests_t, id=rid))[0]
    assert request["status"] == "WAITING_FOR_CANCEL_RESPONSE"
    assert [h["from_status"] for h in await rows(engine, history_t, request_id=rid)][-1] == "WAITING_FOR_CANCEL_RESPONSE"


async def test_two_writers_applying_messages_to_one_request_lose_nothing(engine, db_url):
    from gateway.store.db import make_engine

    other_engine = make_engine(db_url)
    first, second = Writer(engine, max_batch=4), Writer(other_engine, max_batch=4)
    svc1, svc2 = BorrowingService(first, make_ctx()), BorrowingService(second, make_ctx())
    rid, ref = await new_request(svc1, engine)
    await svc1.receive_supplier_message(decode(b := will_supply(ref, 0)), b)
    version = (await rows(engine, borrowing_requests_t, id=rid))[0]["version"]
    jobs = []
    for i in range(12):
        for n, svc in ((2 * i + 1, svc1), (2 * i + 2, svc2)):
            body = notification(ref, n, f"note {n}")
            jobs.append(svc.receive_supplier_message(decode(body), body))
        jobs.append(svc1.apply(rid, AddNote(at=svc1.clock(), by="staff", text=f"staff {i}")))
    replies = await asyncio.gather(*jobs)
    assert all(status_of(decode(r).message) == "OK" for r in replies if isinstance(r, bytes))
    request = (await rows(engine, borrowing_requests_t, id=rid))[0]
    assert request["version"] == version + 36
    assert len(await rows(engine, general_messages_t, request_id=rid)) == 24
    await first.close()
    await second.close()
    await other_engine.dispose()


async def test_a_writer_thread_for_sqlite_gives_the_same_outcome(engine):
    """`sqlite_thread=True` (SQLite batches in a thread of their own) applies groups alike."""
    writer = Writer(engine, sqlite_thread=True)
    svc = BorrowingService(writer, make_ctx(), Clock())
    rid, ref = await new_request(svc, engine)
    replies = await in_one_batch(svc, [will_supply(ref, 1), notification(ref, 2), loaned(ref, 3), will_supply(ref, 1)])
    assert [status_of(r) for r in replies] == ["OK"] * 4
    assert (await rows(engine, borrowing_requests_t, id=rid))[0]["status"] == "SHIPPED_PHYSICALLY"
    assert await count(engine, raw_messages_t) == 3
    await writer.close()
