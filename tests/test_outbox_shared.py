"""The outbox across processes, on PostgreSQL: several workers, each with its own engine and
writer (as separate gateway processes would have), share one database. No row is sent twice, a
request's messages go out in order whichever worker holds the earlier one, and a worker that dies
mid-send leaves its row to the others once its lease ends."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from test_outbox import (  # the loopback partner and gateway fixtures of the single-worker tests
    P1, P2, details, eventually, make_config, rows, worker_for,
)
from test_outbox import gateways, partner  # noqa: F401 - fixtures, used by name

from gateway.core import SendMessage
from gateway.service.borrowing import utc_now
from gateway.store import queries
from gateway.store.db import make_engine
from gateway.store.models import borrowing_requests_t, history_t, outbox_t

ON_POSTGRESQL = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

NOTES = ("n1", "n2")


@pytest.fixture
async def second_engine(db_url):
    """The other process's own engine (its own sessions) on the same database."""
    engine = make_engine(db_url)
    yield engine
    await engine.dispose()


async def queue_requests(gw, count: int) -> list[int]:
    """`count` requests to P1, each followed by one note per NOTES: 1 + len(NOTES) rows each."""
    ids = []
    for i in range(count):
        created = await gw.borrowing.create(details(f"T{i}"), partners=(P1,))
        ids.append(created.request_id)
        for note in NOTES:
            await gw.borrowing.apply(created.request_id, SendMessage(at=utc_now(), by="staff", note=note))
    return ids


async def received_by_request(engine, partner) -> dict[int, list[tuple[str, str | None]]]:
    refs = {r["external_id"]: r["id"] for r in await rows(engine, borrowing_requests_t)}
    got: dict[int, list[tuple[str, str | None]]] = {}
    for g in partner.received:
        got.setdefault(refs[g.ref], []).append((g.kind, g.note))
    return got


IN_ORDER = [("request", None)] + [("requestingAgencyMessage", note) for note in NOTES]


@ON_POSTGRESQL
async def test_a_fetch_in_progress_hides_its_rows_from_another_session_without_waiting(
        engine, second_engine, gateways):
    gw = gateways(engine, {P1: "http://127.0.0.1:9/iso18626", P2: "http://127.0.0.1:9/iso18626"})
    await queue_requests(gw, 4)  # four first rows due; the notes wait behind them
    now = utc_now()
    async with engine.begin() as first:
        mine = await first.run_sync(lambda c: queries.fetch_due_outbox(c, now=now, limit=2))
        async with second_engine.begin() as second:
            theirs = await asyncio.wait_for(
                second.run_sync(lambda c: queries.fetch_due_outbox(c, now=now, limit=10)), timeout=5)
    assert len(mine) == 2 and len(theirs) == 2
    assert not {r["id"] for r in mine} & {r["id"] for r in theirs}
    assert all(r["seq"] == 1 for r in mine + theirs)  # no note before its request


@ON_POSTGRESQL
async def test_the_next_message_waits_for_the_one_another_worker_holds(
        engine, second_engine, partner, gateways):
    urls = {P1: partner.url, P2: partner.url}
    gw_a, gw_b = gateways(engine, urls), gateways(second_engine, urls)
    [request_id] = await queue_requests(gw_a, 1)
    a = worker_for(gateways, gw_a, reset_on_start=False)
    b = worker_for(gateways, gw_b, reset_on_start=False)

    [first], _ = await a._claim(5)
    assert first["seq"] == 1
    assert await b._claim(5) == ([], False)  # seq 2 waits while A holds seq 1
    assert await b.release_leases() == 0  # A's lease holds
    assert await a._deliver(first) == "delivered"
    [second], _ = await b._claim(5)
    assert second["seq"] == 2 and await a._claim(5) == ([], False)
    assert await b._deliver(second) == "delivered"
    await b.run_once()
    assert (await received_by_request(engine, partner))[request_id] == IN_ORDER


@ON_POSTGRESQL
async def test_two_workers_deliver_every_row_once_in_order_and_share_the_work(
        engine, second_engine, partner, gateways):
    urls = {P1: partner.url, P2: partner.url}
    gw_a, gw_b = gateways(engine, urls), gateways(second_engine, urls)
    ids = await queue_requests(gw_a, 16)
    total = len(ids) * len(IN_ORDER)
    partner.delays.extend([0.01] * (total * 2))
    # Two in flight each: neither worker can take everything that is due at once.
    a = worker_for(gateways, gw_a, concurrency=2, reset_on_start=False)
    b = worker_for(gateways, gw_b, concurrency=2, reset_on_start=False)
    await asyncio.gather(a.start(), b.start())
    gw_a.outbox_wakeup.set()
    gw_b.outbox_wakeup.set()

    async def all_delivered() -> bool:
        return all(r["state"] == "delivered" for r in await rows(engine, outbox_t))

    await eventually(all_delivered, timeout=30.0)
    outbox = await rows(engine, outbox_t)
    assert len(outbox) == total and all(r["attempts"] == 1 for r in outbox)
    assert len(partner.received) == total
    assert max(Counter(g.body for g in partner.received).values()) == 1  # the partner's record: once each
    assert a.totals.delivered + b.totals.delivered == total and a.totals.stale == b.totals.stale == 0
    assert a.totals.delivered > 0 and b.totals.delivered > 0  # both did some of the work
    got = await received_by_request(engine, partner)
    assert all(got[request_id] == IN_ORDER for request_id in ids)


@ON_POSTGRESQL
async def test_a_dead_workers_row_goes_again_from_the_other_after_its_lease_only_once_more(
        engine, db_url, partner, gateways):
    urls = {P1: partner.url, P2: partner.url}
    dying_engine = make_engine(db_url)  # A's: disposed when A dies
    gw_a = gateways(dying_engine, urls)
    ahead = [timedelta(0)]  # B's clock, moved on by hand past A's lease
    gw_b = gateways(engine, urls, clock=lambda: utc_now() + ahead[0])
    ids = await queue_requests(gw_b, 4)
    total = len(ids) * len(IN_ORDER)

    partner.hold = asyncio.Event()  # A's send hangs at the partner
    a = worker_for(gateways, gw_a, concurrency=1, shutdown_grace=0.0, reset_on_start=False)
    await a.start()
    gw_a.outbox_wakeup.set()

    async def arrived() -> bool:
        return len(partner.received) == 1

    await eventually(arrived)
    [held] = [r for r in await rows(engine, outbox_t) if r["state"] == "sending"]
    # A dies mid-send: its delivery is cut off and its sessions are gone; nothing is recorded.
    await a.close()
    gateways.workers.remove(a)
    await gw_a.writer.close()
    await dying_engine.dispose()
    partner.hold.set()
    partner.hold = None

    b = worker_for(gateways, gw_b, reset_on_start=False)
    await b.start()  # leaves A's row alone: its lease has not ended
    gw_b.outbox_wakeup.set()

    async def all_but_the_held_request_delivered() -> bool:
        return sum(r["state"] == "delivered" for r in await rows(engine, outbox_t)) == total - len(IN_ORDER)

    await eventually(all_but_the_held_request_delivered)
    await asyncio.sleep(0.2)  # several of B's sweeps
    states = {r["seq"]: r["state"] for r in await rows(engine, outbox_t, request_id=held["request_id"])}
    assert states == {1: "sending", 2: "pending", 3: "pending"}  # its successors wait behind it

    ahead[0] = timedelta(seconds=2.0 + a.lease_margin + 1)  # A's lease (timeout + margin) has ended

    async def all_delivered() -> bool:
        return all(r["state"] == "delivered" for r in await rows(engine, outbox_t))

    await eventually(all_delivered)
    row = (await rows(engine, outbox_t, id=held["id"]))[0]
    assert (row["attempts"], row["unknown_outcomes"]) == (2, 1)
    seen = Counter(g.body for g in partner.received)
    assert len(partner.received) == total + 1
    assert [body for body, n in seen.items() if n > 1] == [row["body"]]  # the only duplicate
    assert seen[row["body"]] == 2
    got = await received_by_request(engine, partner)
    assert got[held["request_id"]] == [IN_ORDER[0], *IN_ORDER]  # the resend, then the rest in order
    assert all(got[request_id] == IN_ORDER for request_id in ids if request_id != held["request_id"])

    history = await rows(engine, history_t, request_id=held["request_id"])
    events = [h["event"] for h in history]
    assert events.count("message_outcome_unknown") == 1
    [sent] = [h for h in history if h["event"] == "message_sent" and (h["detail"] or {}).get("attempts") == 2]
    assert sent["detail"]["retry_after_unknown_outcome"] is True
    assert events.index("message_outcome_unknown") < history.index(sent)
    assert a.totals.delivered == 0 and b.totals.delivered == total


def test_outbox_shared_defaults_to_the_database_and_can_be_set():
    urls = {P1: "http://a", P2: "http://b"}
    settings = make_config(urls).outbox
    assert settings.shared is None
    assert settings.shared_on("postgresql") and not settings.shared_on("sqlite")
    assert not make_config(urls, gateway={"outbox_shared": False}).outbox.shared_on("postgresql")
    assert make_config(urls, gateway={"outbox_shared": True}).outbox.shared_on("sqlite")
    from gateway.config import ConfigError

    with pytest.raises(ConfigError, match="outbox_shared must be true or false"):
        make_config(urls, gateway={"outbox_shared": "yes"})


@pytest.mark.parametrize("shared", [None, True, False])
async def test_the_running_gateway_resets_at_start_only_when_alone(db_url, shared):
    from gateway.runtime import Gateway
    from gateway.transport.outbox import OutboxWorker

    keys = {"database": db_url, **({} if shared is None else {"outbox_shared": shared})}
    gateway = Gateway.create(make_config({P1: "http://a", P2: "http://b"}, gateway=keys))
    try:
        [worker] = [part for part in gateway.background if isinstance(part, OutboxWorker)]
        alone = (not db_url.startswith("postgresql")) if shared is None else not shared
        assert worker.reset_on_start is alone
    finally:
        await gateway.engine.dispose()
