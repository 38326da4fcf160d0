"""Inbound messages decided outside any lock on PostgreSQL: optimistic, version-checked commits.

A batch of supplier messages reads its requests without locking them, decides, and writes with
a version-checked UPDATE first. Two transactions working on one request at once: the one that
commits second meets a `Conflict`, and its messages are decided again on the state the first
one left (no lost update, no status regression, the history complete). The same message
reaching two gateways on one database at once is applied once, and both answer with the
confirmation stored with it.

The interleaving is forced: a wrapper around the core's `decide` stops one transaction right
after it has read its request (it waits, inside the writer's greenlet, for an asyncio event)
until the other one has committed.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.util import await_only

import gateway.service.borrowing as borrowing_module
from gateway.config import parse_config
from gateway.messages import decode
from gateway.messages.codes import ReasonForMessage, Status
from gateway.runtime import Gateway
from gateway.service.borrowing import BorrowingService
from gateway.service.writer import Writer
from gateway.store.db import make_engine
from gateway.store.models import borrowing_requests_t, general_messages_t, history_t, raw_messages_t

from test_service_borrowing import OURS, P1, Clock, details, make_ctx, rows, supplier_message
from test_service_borrowing_batch import at, loaned, new_request, notification, status_of, will_supply


@pytest.fixture
def pg_only(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("concurrent writers are a PostgreSQL matter (SQLite has one writer)")
    return engine


class Interleave:
    """Wraps `decide`: the first decision that `stop(event)` picks waits for `release`."""

    def __init__(self, monkeypatch, stop, waiting: int = 1):
        self.real = borrowing_module.decide
        self.stop, self.waiting = stop, waiting
        self.paused = asyncio.Event()  # set once `waiting` decisions are held
        self.release = asyncio.Event()
        self.held = 0
        self.seen: list[tuple[str, str]] = []  # (the message's status, the request's status it met)
        monkeypatch.setattr(borrowing_module, "decide", self)

    def __call__(self, state, event, policy):
        self.seen.append((event.status.value, state.status.value))
        if self.held < self.waiting and self.stop(event):
            self.held += 1
            if self.held == self.waiting:
                self.paused.set()
            await_only(self.release.wait())  # inside the writer's greenlet: the event loop runs on
        return self.real(state, event, policy)


async def test_a_transaction_that_lost_the_race_decides_again_on_the_new_state(pg_only, db_url, monkeypatch):
    engine = pg_only
    other_engine = make_engine(db_url)
    first, second = Writer(engine), Writer(other_engine)
    svc1, svc2 = BorrowingService(first, make_ctx(), Clock()), BorrowingService(second, make_ctx(), Clock())
    try:
        rid, ref = await new_request(svc1, engine)
        await svc1.receive_supplier_message(decode(b := will_supply(ref, 0)), b)
        version = (await rows(engine, borrowing_requests_t, id=rid))[0]["version"]
        note = notification(ref, 1, "shelf checked")
        interleave = Interleave(monkeypatch, lambda event: event.note == "shelf checked")

        # The Notification reads the request in WILL_SUPPLY and is held before it writes ...
        held = asyncio.create_task(svc1.receive_supplier_message(decode(note), note))
        await asyncio.wait_for(interleave.paused.wait(), 10)
        # ... while the Loaned, on another connection, reads the same version and commits.
        ship = loaned(ref, 2)
        reply = await asyncio.wait_for(svc2.receive_supplier_message(decode(ship), ship), 10)
        assert status_of(decode(reply).message) == "OK"
        interleave.release.set()
        assert status_of(decode(await asyncio.wait_for(held, 10)).message) == "OK"

        # The Notification's first write met the newer version: it was decided again on it.
        assert interleave.seen == [("WillSupply", "WILL_SUPPLY"), ("Loaned", "WILL_SUPPLY"),
                                   ("WillSupply", "SHIPPED_PHYSICALLY")]
        assert first.conflicts >= 1
        request = (await rows(engine, borrowing_requests_t, id=rid))[0]
        assert request["status"] == "SHIPPED_PHYSICALLY"  # not put back to WILL_SUPPLY
        assert request["version"] == version + 2
        assert request["due_date"] is not None  # the Loaned's due date kept
        history = await rows(engine, history_t, request_id=rid)
        linked = [h for h in history if h["raw_message_id"] is not None]
        assert len(linked) == 3  # WillSupply, Loaned, Notification: each once
        assert [h["to_status"] for h in linked][-2:] == ["SHIPPED_PHYSICALLY", "SHIPPED_PHYSICALLY"]
        assert [m["text"] for m in await rows(engine, general_messages_t, request_id=rid)] == ["shelf checked"]
    finally:
        await first.close()
        await second.close()
        await other_engine.dispose()


def gateway_config(db_url: str):
    return parse_config({
        "gateway": {"agency": OURS, "database": db_url, "tick_seconds": 3600},
        "partners": [{"agency": P1, "url": "http://127.0.0.1:9/none"}],
    }, env={})


async def test_the_same_message_at_two_gateways_at_once_is_applied_once(pg_only, db_url, monkeypatch):
    engine = pg_only
    clock1, clock2 = Clock(), Clock()
    clock2.advance(seconds=7)  # so that a confirmation made by each would differ
    gateways = [Gateway.create(gateway_config(db_url), clock=clock) for clock in (clock1, clock2)]
    for gateway in gateways:
        gateway.background = []  # no outbox worker or timers
        await gateway.start()
    try:
        rid, ref = await new_request(gateways[0].borrowing, engine)
        version = (await rows(engine, borrowing_requests_t, id=rid))[0]["version"]
        body = supplier_message(ref, Status.WillSupply, reason=ReasonForMessage.RequestResponse, when=at(0))
        # Both gateways read the request and decide before either writes.
        interleave = Interleave(monkeypatch, lambda event: True, waiting=2)
        replies = [asyncio.create_task(g.borrowing.receive_supplier_message(decode(body), body)) for g in gateways]
        await asyncio.wait_for(interleave.paused.wait(), 10)
        interleave.release.set()
        first, second = await asyncio.wait_for(asyncio.gather(*replies), 10)

        assert first == second  # the one stored with the message
        assert status_of(decode(first).message) == "OK"
        assert len(await rows(engine, raw_messages_t, direction="in")) == 1
        request = (await rows(engine, borrowing_requests_t, id=rid))[0]
        assert request["status"] == "WILL_SUPPLY" and request["version"] == version + 1
        assert len([h for h in await rows(engine, history_t, request_id=rid) if h["raw_message_id"]]) == 1
    finally:
        for gateway in gateways:
            await gateway.close()


async def test_a_cached_state_is_not_used_once_another_process_moved_the_request_on(pg_only, db_url):
    """The decoded-state cache answers only for the version the row holds: a change made through
    another connection (another process) is read, not overwritten."""
    engine = pg_only
    other_engine = make_engine(db_url)
    first, second = Writer(engine), Writer(other_engine)
    svc1, svc2 = BorrowingService(first, make_ctx(), Clock()), BorrowingService(second, make_ctx(), Clock())
    try:
        rid, ref = await new_request(svc1, engine)
        await svc1.receive_supplier_message(decode(b := will_supply(ref, 0)), b)  # svc1 caches WILL_SUPPLY
        await svc2.receive_supplier_message(decode(b := loaned(ref, 1)), b)  # another process ships it
        hits = svc1.supplier_messages.cache.hits
        await svc1.receive_supplier_message(decode(b := notification(ref, 2, "packed")), b)
        assert svc1.supplier_messages.cache.hits == hits  # the cached WILL_SUPPLY was not used
        request = (await rows(engine, borrowing_requests_t, id=rid))[0]
        assert request["status"] == "SHIPPED_PHYSICALLY"
    finally:
        await first.close()
        await second.close()
        await other_engine.dispose()


async def test_postgresql_writers_run_several_batches_at_once(pg_only):
    """Several transactions in flight at once on PostgreSQL (SQLite keeps one writer)."""
    writer = Writer(pg_only, max_batch=1, concurrency=2)  # one step per transaction: two lanes take one each
    inside, most = 0, 0
    gate = asyncio.Event()

    def step(conn):
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        if most >= 2:
            gate.set()
        await_only(asyncio.wait_for(gate.wait(), 5))  # each holds its transaction open until two are in
        inside -= 1
        return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()

    try:
        pids = await asyncio.gather(writer.run(step), writer.run(step))
        assert most == 2 and writer.concurrency > 1
        assert pids[0] != pids[1]  # two connections, two transactions
    finally:
        await writer.close()


async def test_sqlite_keeps_one_writer(engine):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    writer = Writer(engine, concurrency=4)
    assert writer.concurrency == 1
    await writer.close()

