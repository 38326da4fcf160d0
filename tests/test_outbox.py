"""The outbound client and the outbox worker against real partner servers on loopback, on a real
database (SQLite file and PostgreSQL): delivered once, in order, retried, refused, recovered."""

from __future__ import annotations

import asyncio
import random
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select, update

from gateway.app import build_app
from gateway.runtime import Gateway
from gateway.runtime import outbox_worker as OutboxWorker  # a worker over a gateway's parts
from gateway.config import Partner, parse_config
from gateway.core import RequestDetails, SendMessage
from gateway.messages import ErrorType, Fault, Version, answer, decode, encode, model
from gateway.messages.codes import ReasonForMessage, Status
from gateway.service.borrowing import BorrowingService, utc_now
from gateway.service.context import ServiceContext
from gateway.service.writer import Writer
from gateway.store import queries
from gateway.store.db import make_engine
from gateway.store.models import (
    borrowing_requests_t, history_t, lending_requests_t, outbox_t, raw_messages_t, rota_entries_t,
)
from gateway.transport.auth import check_transport
from gateway.transport.client import (
    CONTENT_TYPE, Confirmed, PartnerClient, Refused, TransportError, classify_response,
)
from gateway.transport.outbox import backoff_delay

OURS = "ISIL:US-NjP"
P1, P2, P3 = "ISIL:DK-1", "ISIL:DK-2", "ISIL:DK-3"
FAST = dict(base_delay=0.01, max_delay=0.05, poll_interval=0.05)
READER_KEY = "reader-key-0001"


# --- a scripted partner on loopback -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Got:
    partner: str  # the agency the message was addressed to
    kind: str
    ref: str  # requestingAgencyRequestId
    action: str | None
    note: str | None
    body: bytes


@dataclass
class PartnerServer:
    """Answers every ISO message with its confirmation; `refuse(got)` -> True answers ERROR;
    `delays` are slept before answering, one per call; `hold` (an Event) makes calls wait for it."""

    port: int = field(default_factory=free_port)
    received: list[Got] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    refuse: Any = None
    hold: asyncio.Event | None = None
    reply: Any = None  # (request) -> web.Response, replacing the ISO answer
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/iso18626"

    async def start(self) -> PartnerServer:
        app = web.Application()
        app.router.add_post("/iso18626", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()
        return self

    async def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.headers.append(dict(request.headers))
        if self.reply is not None:
            return self.reply(request)
        inbound = decode(body)
        message, header = inbound.message, inbound.message.header
        got = Got(str(header.supplying_agency_id), inbound.kind, header.requesting_agency_request_id,
                  getattr(getattr(message, "action", None), "value", None), getattr(message, "note", None), body)
        self.received.append(got)
        if self.hold is not None:
            await self.hold.wait()
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
        faults = None
        if self.refuse is not None and self.refuse(got):
            faults = [Fault(ErrorType.UnrecognisedDataValue, "/ISO18626Message: we do not lend that")]
        return web.Response(body=answer(inbound, utc_now(), faults=faults), content_type="application/xml")


@pytest.fixture
async def partner():
    server = await PartnerServer().start()
    yield server
    await server.stop()


# --- the gateway under test -----------------------------------------------------------------------


def make_config(urls: dict[str, str], *, timeout: float = 2.0, credentials: dict | None = None,
                gateway: dict | None = None, partner_keys: dict[str, dict] | None = None):
    """`gateway`: more [gateway] keys; `partner_keys`: more keys of one partner's entry."""
    raw = {
        "gateway": {"agency": OURS, "listen": "127.0.0.1:0", "database": "unused", **(gateway or {})},
        "policy": {"end_of_rota": "expire", "on_send_failure": "next"},
        "partners": [
            {"agency": agency, "name": agency, "url": url, "version": "2017", "timeout_seconds": timeout,
             "credentials": credentials or {}, **(partner_keys or {}).get(agency, {})}
            for agency, url in urls.items()
        ],
        "rota_templates": [{"name": "default", "partners": [P1, P2]}],
        "api_keys": [{"key": READER_KEY, "role": "read-only", "name": "reader"}],
    }
    return parse_config(raw, env={})


def make_gateway(engine, urls: dict[str, str], *, clock=utc_now, **kw) -> Gateway:
    config = make_config(urls, **kw)
    writer = Writer(engine)
    ctx = ServiceContext.from_config(config)
    return Gateway(config, ctx, engine, writer, BorrowingService(writer, ctx, clock), lending=None, clock=clock)


@pytest.fixture
async def gateways():
    made: list[Gateway] = []
    workers: list[OutboxWorker] = []

    def make(engine, urls, **kw) -> Gateway:
        gw = make_gateway(engine, urls, **kw)
        made.append(gw)
        return gw

    make.workers = workers  # type: ignore[attr-defined]
    yield make
    for worker in workers:
        await worker.close()
    for gw in made:
        await gw.writer.close()


def worker_for(gateways, gw: Gateway, **kw) -> OutboxWorker:
    worker = OutboxWorker(gw, **{**FAST, **kw})
    gateways.workers.append(worker)
    return worker


def details(title: str = "The Name of the Rose") -> RequestDetails:
    return RequestDetails(requester="patron-42", pickup_location="Main desk", title=title,
                          author="Eco, Umberto", isbn="9780151446476")


async def rows(engine, table, **where) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        stmt = select(table)
        for k, v in where.items():
            stmt = stmt.where(table.c[k] == v)
        return [dict(r._mapping) for r in await conn.execute(stmt.order_by(table.c.id))]


async def eventually(check, timeout: float = 10.0, interval: float = 0.02) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


async def drain(worker: OutboxWorker, engine, *, timeout: float = 10.0) -> None:
    """run_once until no row is pending or sending (waiting out the backoff between runs)."""
    async def settled() -> bool:
        await worker.run_once()
        return not [r for r in await rows(engine, outbox_t) if r["state"] in ("pending", "sending")]

    await eventually(settled, timeout=timeout, interval=0.03)


# --- pure parts ---------------------------------------------------------------------------------


class FixedRandom(random.Random):
    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


def test_backoff_is_exponential_capped_with_full_jitter_and_a_floor():
    top = FixedRandom(0.999999)
    caps = [backoff_delay(n, base_delay=1.0, max_delay=600.0, rng=top) for n in range(1, 12)]
    assert [round(c) for c in caps] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600]
    assert backoff_delay(3, base_delay=1.0, max_delay=600.0, rng=FixedRandom(0.5)) == 2.0
    assert backoff_delay(1, base_delay=1.0, max_delay=600.0, rng=FixedRandom(0.0)) == 0.05  # floor
    rng = random.Random(7)
    spread = {round(backoff_delay(4, base_delay=1.0, max_delay=600.0, rng=rng), 3) for _ in range(50)}
    assert len(spread) > 40 and all(0.05 <= d < 8.0 for d in spread)


def test_outbox_limits_are_configurable_and_bad_values_are_refused_by_name():
    config = make_config({P1: "http://a", P2: "http://b"}, gateway={
        "outbox_partner_max_in_flight": 2, "outbox_breaker_threshold": 7, "outbox_breaker_cooldown_seconds": 30,
        "outbox_lease_margin_seconds": 12.5, "outbox_concurrency": 8,
    }, partner_keys={P1: {"max_in_flight": 1, "breaker_threshold": 2, "breaker_cooldown_seconds": 5}})
    settings = config.outbox
    assert (settings.partner_max_in_flight, settings.breaker_threshold, settings.breaker_cooldown,
            settings.lease_margin, settings.concurrency) == (2, 7, 30.0, 12.5, 8)
    p1, p2 = config.partners[P1], config.partners[P2]
    assert (p1.max_in_flight, p1.breaker_threshold, p1.breaker_cooldown_seconds) == (1, 2, 5.0)
    assert (p2.max_in_flight, p2.breaker_threshold, p2.breaker_cooldown_seconds) == (None, None, None)
    from gateway.transport.breaker import breakers_for

    breakers = breakers_for(config)
    assert (breakers.get(P1).settings.threshold, breakers.get(P1).settings.cooldown) == (2, 5.0)
    assert (breakers.get(P2).settings.threshold, breakers.get(P2).settings.cooldown) == (7, 30.0)
    assert parse_config({}, env={}).outbox.partner_max_in_flight == 4  # the default

    from gateway.config import ConfigError

    for gateway, partner, message in [
        ({"outbox_partner_max_in_flight": 0}, {}, "[gateway]: outbox_partner_max_in_flight must be an integer at least 1"),
        ({"outbox_breaker_cooldown_seconds": 0}, {}, "outbox_breaker_cooldown_seconds must be a number above 0"),
        ({"outbox_lease_margin_seconds": "10"}, {}, "outbox_lease_margin_seconds must be a number"),
        ({}, {"max_in_flight": 2.5}, f"partner {P1}: max_in_flight must be an integer at least 1"),
        ({}, {"breaker_threshold": True}, f"partner {P1}: breaker_threshold must be an integer"),
    ]:
        with pytest.raises(ConfigError) as raised:
            make_config({P1: "http://a"}, gateway=gateway, partner_keys={P1: partner})
        assert message in str(raised.value)


def test_breaker_opens_after_the_threshold_probes_after_the_cooldown_and_closes_on_an_answer():
    from gateway.transport.breaker import BreakerSettings, PartnerBreaker

    t0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
    breaker = PartnerBreaker(BreakerSettings(threshold=3, cooldown=60))
    assert [breaker.failed("timeout", t0) for _ in range(3)] == [False, False, True]
    assert (breaker.state, breaker.retry_at) == ("open", t0 + timedelta(seconds=60))
    assert not breaker.allows(t0 + timedelta(seconds=59))
    assert breaker.allows(t0 + timedelta(seconds=60)) and breaker.state == "half_open"
    assert breaker.max_in_flight(4) == 1  # one probe at a time
    assert breaker.failed("HTTP 503", t0 + timedelta(seconds=61))  # the probe failed: open again
    assert breaker.retry_at == t0 + timedelta(seconds=121) and breaker.last_error == "HTTP 503"
    assert breaker.allows(t0 + timedelta(seconds=121))
    breaker.succeeded(t0 + timedelta(seconds=122))  # any confirmation, OK or ERROR
    assert (breaker.state, breaker.failures, breaker.max_in_flight(4)) == ("closed", 0, 4)
    assert not breaker.failed("timeout", t0) and breaker.state == "closed"  # counting starts over
    with pytest.raises(ValueError):
        BreakerSettings(threshold=0)


def test_classify_response_kinds():
    body, inbound = sample_request()
    now = utc_now()
    ok = classify_response("request", 200, answer(inbound, now))
    assert isinstance(ok, Confirmed) and ok.confirmation.confirmation_header.message_status.value == "OK"
    refused = classify_response("request", 200, answer(inbound, now, faults=[
        Fault(ErrorType.UnrecognisedDataValue, "/x: no")]))
    assert isinstance(refused, Refused)
    assert (refused.error_type, refused.error_value) == ("UnrecognisedDataValue", "/x: no")
    assert "UnrecognisedDataValue" in refused.reason
    wrong_kind = classify_response("requestingAgencyMessage", 200, answer(inbound, now))
    assert isinstance(wrong_kind, TransportError) and "not a requestingAgencyMessageConfirmation" in wrong_kind.reason
    assert classify_response("request", 503, b"busy") == TransportError("HTTP 503", status=503, raw=b"busy")
    assert "not a valid ISO 18626" in classify_response("request", 200, b"<html>oops</html>").reason
    assert "empty body" in classify_response("request", 200, b"").reason
    not_a_confirmation = classify_response("request", 200, body)
    assert isinstance(not_a_confirmation, TransportError) and "is a request" in not_a_confirmation.reason


def sample_request() -> tuple[bytes, Any]:
    from support.messages_helpers import sample_request as make  # the shared sample of a full request

    body = encode(make(), Version.V2017)
    return body, decode(body)


# --- the client on the wire -----------------------------------------------------------------------


async def test_client_posts_xml_with_credentials_and_classifies_transport_faults(partner):
    body, _ = sample_request()
    credentials = {"outbound": {"bearer_token": "tok-1", "hmac_secret": "s3cret"}}
    who = Partner(agency=P1, name=P1, url=partner.url, credentials=credentials, timeout_seconds=0.3)
    client = PartnerClient()
    try:
        outcome = await client.send(who, "request", body)
        assert isinstance(outcome, Confirmed) and outcome.raw.startswith(b"<?xml")
        sent = partner.headers[-1]
        assert sent["Content-Type"] == CONTENT_TYPE
        # What the partner sees passes the inbound check configured with the same secrets.
        assert check_transport({"inbound": credentials["outbound"]}, sent, body, "127.0.0.1") is not None
        assert partner.received[-1].body == body

        partner.delays.append(1.0)
        slow = await client.send(who, "request", body)
        assert isinstance(slow, TransportError) and slow.reason.startswith("timeout")

        partner.reply = lambda request: web.Response(status=500, text="boom")
        assert (await client.send(who, "request", body)).reason == "HTTP 500"
        partner.reply = lambda request: web.Response(status=200, text="not xml")
        assert "not a valid ISO 18626 requestConfirmation" in (await client.send(who, "request", body)).reason

        down = Partner(agency=P1, name=P1, url=f"http://127.0.0.1:{free_port()}/iso18626")
        refused = await client.send(down, "request", body)
        assert isinstance(refused, TransportError) and refused.reason.startswith("connection refused")
    finally:
        await client.close()


# --- the worker ---------------------------------------------------------------------------------


async def test_confirmed_request_is_delivered_recorded_and_applied(engine, partner, gateways):
    gw = gateways(engine, {P1: partner.url, P2: partner.url})
    created = await gw.borrowing.create(details(), partners=(P1, P2))
    worker = worker_for(gateways, gw)

    counts = await worker.run_once()
    assert (counts.claimed, counts.delivered) == (1, 1)
    assert [(g.partner, g.kind) for g in partner.received] == [(P1, "request")]

    [row] = await rows(engine, outbox_t)
    assert row["state"] == "delivered" and row["attempts"] == 1 and row["delivered_at"] is not None
    [raw] = await rows(engine, raw_messages_t)
    assert raw["id"] == row["raw_message_id"] and raw["direction"] == "out" and raw["partner_agency"] == P1
    assert raw["body"] == row["body"] and raw["kind"] == "request"
    assert decode(raw["confirmation"]).kind == "requestConfirmation"
    [request] = await rows(engine, borrowing_requests_t)
    assert request["status"] == "REQUEST_SENT" and request["active_partner"] == P1
    history = await rows(engine, history_t, request_id=created.request_id)
    sent = [h for h in history if h["event"] == "message_sent"]
    assert len(sent) == 1 and sent[0]["raw_message_id"] == raw["id"]
    assert [h["to_status"] for h in history][-1] == "REQUEST_SENT"
    assert await worker.run_once() == type(counts)()  # nothing left


async def test_background_worker_wakes_on_the_signal(engine, partner, gateways):
    gw = gateways(engine, {P1: partner.url, P2: partner.url})
    worker = worker_for(gateways, gw, poll_interval=30.0)  # only the wakeup can get it going
    await worker.start()
    await asyncio.sleep(0.05)  # the loop is asleep now
    await gw.borrowing.create(details(), partners=(P1,))
    gw.outbox_wakeup.set()  # what the endpoint / API do after a commit that queued rows

    async def delivered() -> bool:
        return [r["state"] for r in await rows(engine, outbox_t)] == ["delivered"]

    await eventually(delivered, timeout=5.0)
    assert (await rows(engine, borrowing_requests_t))[0]["status"] == "REQUEST_SENT"


async def test_partner_down_then_back_gets_every_message_once_in_order(engine, gateways):
    partner = PartnerServer()  # not started: nothing listens on its port yet
    gw = gateways(engine, {P1: partner.url, P2: partner.url})
    a = await gw.borrowing.create(details("A"), partners=(P1,))
    b = await gw.borrowing.create(details("B"), partners=(P1,))
    for i in range(1, 4):
        for r in (a, b):
            await gw.borrowing.apply(r.request_id, SendMessage(at=utc_now(), by="staff:ann", note=f"note {i}"))
    worker = worker_for(gateways, gw, rng=random.Random(1))

    counts = await worker.run_once()
    assert (counts.claimed, counts.retried) == (2, 2)  # one request per request id; the rest wait
    outbox = await rows(engine, outbox_t)
    assert len(outbox) == 8
    assert {r["seq"]: r["state"] for r in outbox if r["request_id"] == a.request_id} == {
        1: "pending", 2: "pending", 3: "pending", 4: "pending"}
    first = [r for r in outbox if r["seq"] == 1]
    assert all(r["attempts"] == 1 and "connection refused" in r["last_error"] for r in first)
    await asyncio.sleep(0.1)
    await worker.run_once()  # still down: attempt 2
    assert all(r["attempts"] == 2 for r in await rows(engine, outbox_t, seq=1))

    await partner.start()  # the partner comes back on the same port
    try:
        await worker.start()  # the background loop takes it from here

        async def all_delivered() -> bool:
            return all(r["state"] == "delivered" for r in await rows(engine, outbox_t))

        await eventually(all_delivered)
    finally:
        await worker.close()
        await partner.stop()

    refs = {r["id"]: r["external_id"] for r in await rows(engine, borrowing_requests_t)}
    for request in (a, b):
        got = [(g.kind, g.note) for g in partner.received if g.ref == refs[request.request_id]]
        assert got == [("request", None), ("requestingAgencyMessage", "note 1"),
                       ("requestingAgencyMessage", "note 2"), ("requestingAgencyMessage", "note 3")]
    assert len(await rows(engine, raw_messages_t, direction="out")) == 8
    assert {r["status"] for r in await rows(engine, borrowing_requests_t)} == {"REQUEST_SENT"}


async def test_a_partner_slower_than_its_timeout_is_retried(engine, partner, gateways):
    gw = gateways(engine, {P1: partner.url, P2: partner.url}, timeout=0.2)
    await gw.borrowing.create(details(), partners=(P1,))
    partner.delays.append(0.6)
    worker = worker_for(gateways, gw)

    counts = await worker.run_once()
    assert counts.retried == 1
    [row] = await rows(engine, outbox_t)
    assert row["state"] == "pending" and row["last_error"].startswith("timeout")
    await drain(worker, engine)
    [row] = await rows(engine, outbox_t)
    assert row["state"] == "delivered" and row["attempts"] == 2
    assert (await rows(engine, borrowing_requests_t))[0]["status"] == "REQUEST_SENT"


async def test_error_confirmation_of_a_request_moves_the_rota_on(engine, partner, gateways):
    partner.refuse = lambda got: got.partner == P1
    gw = gateways(engine, {P1: partner.url, P2: partner.url})
    created = await gw.borrowing.create(details(), partners=(P1, P2))
    worker = worker_for(gateways, gw)

    counts = await worker.run_once()  # P1 refuses; the request to P2 is queued and delivered
    assert (counts.refused, counts.delivered, counts.retried) == (1, 1, 0)
    first, second = await rows(engine, outbox_t)
    assert (first["partner_agency"], first["state"], first["attempts"]) == (P1, "failed", 1)
    assert "UnrecognisedDataValue" in first["last_error"]
    refused_raw = (await rows(engine, raw_messages_t, id=first["raw_message_id"]))[0]
    assert decode(refused_raw["confirmation"]).message.confirmation_header.message_status.value == "ERROR"
    assert (second["partner_agency"], second["kind"], second["state"]) == (P2, "request", "delivered")
    [request] = await rows(engine, borrowing_requests_t)
    assert request["status"] == "REQUEST_SENT" and request["active_partner"] == P2
    rota = {r["agency"]: r["state"] for r in await rows(engine, rota_entries_t, request_id=created.request_id)}
    assert rota[P2] == "active" and rota[P1] != "active"
    assert [g.partner for g in partner.received] == [P1, P2]  # P1 got it once: no retry


async def test_error_confirmation_of_a_message_flags_the_request(engine, partner, gateways):
    partner.refuse = lambda got: got.kind == "requestingAgencyMessage"
    gw = gateways(engine, {P1: partner.url, P2: partner.url})
    created = await gw.borrowing.create(details(), partners=(P1,))
    worker = worker_for(gateways, gw)
    await worker.run_once()
    await gw.borrowing.apply(created.request_id, SendMessage(at=utc_now(), by="staff:ann", note="hello"))

    counts = await worker.run_once()
    assert counts.refused == 1
    [request] = await rows(engine, borrowing_requests_t)
    assert request["status"] == "REQUEST_SENT"  # unchanged
    assert request["needs_attention"] and "send_failed" in request["attention_reason"]
    events = [h["event"] for h in await rows(engine, history_t, request_id=created.request_id)]
    assert "message_sent_refused" in events and "message_undelivered" in events


async def test_max_attempts_exhausted_fails_and_moves_on_or_needs_attention(engine, partner, gateways):
    dead = f"http://127.0.0.1:{free_port()}/iso18626"
    gw = gateways(engine, {P1: dead, P2: partner.url})
    with_next = await gw.borrowing.create(details("next"), partners=(P1, P2))
    alone = await gw.borrowing.create(details("alone"), partners=(P1,))
    worker = worker_for(gateways, gw, max_attempts=3)

    await drain(worker, engine)
    by_request = {}
    for r in await rows(engine, outbox_t):
        by_request.setdefault(r["request_id"], []).append(r)
    p1_row, p2_row = by_request[with_next.request_id]
    assert (p1_row["partner_agency"], p1_row["state"], p1_row["attempts"]) == (P1, "failed", 3)
    assert "gave up after 3 attempts" in p1_row["last_error"] and p1_row["raw_message_id"] is None
    assert (p2_row["partner_agency"], p2_row["state"]) == (P2, "delivered")
    [only] = by_request[alone.request_id]
    assert (only["state"], only["attempts"]) == ("failed", 3)

    requests = {r["id"]: r for r in await rows(engine, borrowing_requests_t)}
    assert requests[with_next.request_id]["status"] == "REQUEST_SENT"
    assert requests[with_next.request_id]["active_partner"] == P2
    assert requests[alone.request_id]["status"] == "READY_TO_SEND"
    assert requests[alone.request_id]["needs_attention"]
    assert worker.totals.failed == 2 and worker.totals.retried == 4


async def test_rows_left_sending_by_a_crash_are_sent_again_after_restart(engine, partner, gateways):
    gw = gateways(engine, {P1: partner.url, P2: partner.url})
    created = await gw.borrowing.create(details(), partners=(P1,))
    partner.hold = asyncio.Event()  # the first POST hangs
    crashed = worker_for(gateways, gw, shutdown_grace=0.0)
    await crashed.start()
    gw.outbox_wakeup.set()

    async def arrived() -> bool:
        return len(partner.received) == 1

    await eventually(arrived)
    await crashed.close()  # "killed" mid-send: no outcome was recorded
    [row] = await rows(engine, outbox_t)
    assert row["state"] == "sending"
    partner.hold.set()
    partner.hold = None

    restarted = worker_for(gateways, gw)
    assert await restarted.recover() == 1
    counts = await restarted.run_once()
    assert counts.delivered == 1
    [row] = await rows(engine, outbox_t)
    assert row["state"] == "delivered" and row["attempts"] == 2
    assert len(partner.received) == 2  # the partner saw it twice; its idempotency absorbs that
    assert len(await rows(engine, raw_messages_t)) == 1
    history = await rows(engine, history_t, request_id=created.request_id)
    assert [h["event"] for h in history].count("request_confirmed") == 1
    assert (await rows(engine, borrowing_requests_t))[0]["status"] == "REQUEST_SENT"


# Makes the database refuse to record any outcome (an update that moves an outbox row on from
# `sending`), as a full disk or a locked file would, until it is dropped.
UNWRITABLE = {
    "sqlite": ["CREATE TRIGGER outbox_unwritable BEFORE UPDATE ON outbox WHEN OLD.state = 'sending' AND NEW.state <> 'sending' "
               "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"],
    "postgresql": [
        "CREATE FUNCTION outbox_unwritable() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$",
        "CREATE TRIGGER outbox_unwritable BEFORE UPDATE ON outbox FOR EACH ROW "
        "WHEN (OLD.state = 'sending' AND NEW.state <> 'sending') EXECUTE FUNCTION outbox_unwritable()",
    ],
}
WRITABLE = {
    "sqlite": ["DROP TRIGGER outbox_unwritable"],
    "postgresql": ["DROP TRIGGER outbox_unwritable ON outbox", "DROP FUNCTION outbox_unwritable()"],
}


async def run_sql(engine, statements: list[str]) -> None:
    async with engine.begin() as conn:
        for sql in statements:
            await conn.exec_driver_sql(sql)


async def test_an_unrecorded_outcome_is_retried_when_the_lease_ends_and_marked_in_history(
        engine, partner, gateways, caplog):
    """The partner confirms, but the database refuses to record it: the row stays `sending` only
    until its lease (partner timeout + margin) ends, then goes again without a restart, and the
    history says that this send is a retry after an unknown outcome."""
    ahead = [timedelta(0)]
    gw = gateways(engine, {P1: partner.url, P2: partner.url}, clock=lambda: utc_now() + ahead[0])
    created = await gw.borrowing.create(details(), partners=(P1,))
    dialect = engine.dialect.name
    await run_sql(engine, UNWRITABLE[dialect])
    worker = worker_for(gateways, gw, lease_margin=5.0)
    await worker.start()
    gw.outbox_wakeup.set()

    async def recording_failed() -> bool:
        return any("failed unexpectedly" in r.getMessage() for r in caplog.records)

    await eventually(recording_failed)
    assert len(partner.received) == 1
    [row] = await rows(engine, outbox_t)
    assert row["state"] == "sending" and row["attempts"] == 1

    await run_sql(engine, WRITABLE[dialect])  # the database is writable again
    await asyncio.sleep(0.3)  # several sweeps: the lease (2 s timeout + 5 s margin) still holds
    [row] = await rows(engine, outbox_t)
    assert row["state"] == "sending" and len(partner.received) == 1

    ahead[0] = timedelta(seconds=2.0 + 5.0 + 0.5)  # the lease has ended

    async def delivered() -> bool:
        return [r["state"] for r in await rows(engine, outbox_t)] == ["delivered"]

    await eventually(delivered)
    [row] = await rows(engine, outbox_t)
    assert (row["attempts"], row["unknown_outcomes"]) == (2, 1)
    assert len(partner.received) == 2 and partner.received[0].body == partner.received[1].body
    history = await rows(engine, history_t, request_id=created.request_id)
    events = [h["event"] for h in history]
    assert events.count("message_outcome_unknown") == 1 and events.count("request_confirmed") == 1
    assert events.index("message_outcome_unknown") < events.index("message_sent")
    unknown = history[events.index("message_outcome_unknown")]
    assert unknown["actor"] == "system" and "may receive it twice" in unknown["detail"]["text"]
    [sent] = [h for h in history if h["event"] == "message_sent"]
    assert sent["detail"]["retry_after_unknown_outcome"] is True and sent["detail"]["attempts"] == 2
    assert "after an unknown outcome" in sent["detail"]["text"]
    assert (await rows(engine, borrowing_requests_t))[0]["status"] == "REQUEST_SENT"


async def test_an_outcome_recorded_late_by_a_superseded_claim_is_not_applied(engine, partner, gateways):
    """A worker whose lease ended, and whose row was claimed again, records nothing when its
    answer comes in late: the row stays with the current claim (not put back to `pending` under
    it, which would let a third send start), and only the current claim's outcome counts."""
    gw = gateways(engine, {P1: partner.url, P2: partner.url})
    created = await gw.borrowing.create(details(), partners=(P1,))
    worker = worker_for(gateways, gw)
    [first], _ = await worker._claim(1)
    await gw.writer.run(lambda conn: queries.release_outbox_leases(conn, now=utc_now(), expired_only=False))
    [second], _ = await worker._claim(1)
    assert second["attempts"] == 2

    late = await worker._record(first, TransportError("timeout: no answer"), utc_now())
    assert late == "stale"
    [row] = await rows(engine, outbox_t)
    assert (row["state"], row["attempts"], row["last_error"]) == ("sending", 2, second["last_error"])
    assert await worker._deliver(second) == "delivered"
    history = await rows(engine, history_t, request_id=created.request_id)
    events = [h["event"] for h in history]
    assert events.count("request_confirmed") == 1 and events.count("message_sent") == 1
    assert len(partner.received) == 1


async def test_two_workers_on_one_database_never_send_a_row_twice(engine, db_url, partner, gateways):
    urls = {P1: partner.url, P2: partner.url}
    gw_a = gateways(engine, urls)
    other_engine = make_engine(db_url)
    try:
        gw_b = gateways(other_engine, urls)  # a second process: own engine, own writer
        ids = []
        for i in range(12):
            created = await gw_a.borrowing.create(details(f"T{i}"), partners=(P1,))
            ids.append(created.request_id)
            for n in (1, 2):
                await gw_a.borrowing.apply(created.request_id, SendMessage(at=utc_now(), by="staff", note=f"n{n}"))
        partner.delays.extend([0.005] * 200)
        a = worker_for(gateways, gw_a, concurrency=4)
        b = worker_for(gateways, gw_b, concurrency=4)
        for _ in range(20):
            await asyncio.gather(a.run_once(), b.run_once())
            if all(r["state"] == "delivered" for r in await rows(engine, outbox_t)):
                break
        outbox = await rows(engine, outbox_t)
        assert len(outbox) == 36 and all(r["state"] == "delivered" and r["attempts"] == 1 for r in outbox)
        assert a.totals.delivered + b.totals.delivered == 36 and a.totals.stale == b.totals.stale == 0
        assert len(partner.received) == 36
        assert len({g.body for g in partner.received}) == 36  # no message twice
        refs = {r["id"]: r["external_id"] for r in await rows(engine, borrowing_requests_t)}
        for request_id in ids:
            got = [(g.kind, g.note) for g in partner.received if g.ref == refs[request_id]]
            assert got == [("request", None), ("requestingAgencyMessage", "n1"), ("requestingAgencyMessage", "n2")]
    finally:
        for worker in gateways.workers:
            await worker.close()
        gateways.workers.clear()
        await gw_b.writer.close()
        await other_engine.dispose()


async def test_leases_leave_a_live_workers_rows_and_take_a_dead_ones(engine, db_url, partner, gateways):
    urls = {P1: partner.url, P2: partner.url}
    gw_a = gateways(engine, urls)
    other_engine = make_engine(db_url)
    # B's clock is moved on by hand, so "claimed just now" and "claimed long ago" do not depend
    # on how fast a loaded CI machine runs the first half
    ahead = [timedelta(0)]
    gw_b = gateways(other_engine, urls, clock=lambda: utc_now() + ahead[0])
    try:
        await gw_a.borrowing.create(details(), partners=(P1,))
        partner.hold = asyncio.Event()
        a = worker_for(gateways, gw_a, shutdown_grace=0.0)
        await a.start()
        gw_a.outbox_wakeup.set()

        async def arrived() -> bool:
            return len(partner.received) == 1

        await eventually(arrived)
        b = worker_for(gateways, gw_b, reset_on_start=False)  # several workers on one database
        await b.start()  # does not reset A's row: its lease has not ended
        await asyncio.sleep(0.2)  # several of B's sweeps (poll_interval 0.05)
        assert [r["state"] for r in await rows(engine, outbox_t)] == ["sending"]
        assert len(partner.received) == 1

        await a.close()  # A dies mid-send
        partner.hold.set()
        partner.hold = None
        ahead[0] = timedelta(seconds=2.0 + a.lease_margin + 1)  # past A's lease: timeout + margin

        async def delivered() -> bool:
            return [r["state"] for r in await rows(engine, outbox_t)] == ["delivered"]

        await eventually(delivered)  # B's poll resets the stale row and sends it
        assert b.totals.delivered == 1 and len(partner.received) == 2
        assert (await rows(engine, borrowing_requests_t))[0]["status"] == "REQUEST_SENT"
    finally:
        for worker in gateways.workers:
            await worker.close()
        gateways.workers.clear()
        await gw_b.writer.close()
        await other_engine.dispose()


async def test_lending_rows_are_marked_and_the_hook_runs_in_the_same_step(engine, partner, gateways):
    gw = gateways(engine, {P1: partner.url, P2: partner.url})
    now = utc_now()
    when = datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)
    message = model.SupplyingAgencyMessage(
        header=model.SupplyingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(OURS), requesting_agency_id=model.AgencyId.parse(P1),
            timestamp=when, requesting_agency_request_id="THEIR-1", supplying_agency_request_id="L-1",
        ),
        message_info=model.MessageInfo(reason_for_message=ReasonForMessage.RequestResponse),
        status_info=model.StatusInfo(status=Status.WillSupply, last_change=when),
    )
    body = encode(message, Version.V2017)

    def queue(conn):
        lending_id = queries.insert_lending(conn, {
            "requesting_agency": P1, "requesting_agency_request_id": "THEIR-1", "supplying_agency": OURS,
            "status": "WILL_SUPPLY"}, now=now)
        queries.insert_outbox(conn, partner_agency=P1, partner_url=partner.url, kind="supplyingAgencyMessage",
                              body=body, now=now, lending_id=lending_id)
        return lending_id

    lending_id = await gw.writer.run(queue)
    seen = []

    def hook(conn, row, verdict, outcome, at):
        seen.append((row["lending_id"], verdict, type(outcome).__name__))
        conn.execute(update(lending_requests_t).where(lending_requests_t.c.id == row["lending_id"])
                     .values(needs_attention=False, previous_status="hooked"))

    worker = worker_for(gateways, gw, on_lending_outcome=hook)
    assert (await worker.run_once()).delivered == 1
    assert seen == [(lending_id, "delivered", "Confirmed")]
    [row] = await rows(engine, outbox_t)
    assert row["state"] == "delivered" and row["raw_message_id"] is not None
    assert (await rows(engine, lending_requests_t))[0]["previous_status"] == "hooked"
    assert [g.kind for g in partner.received] == ["supplyingAgencyMessage"]
    history = await rows(engine, history_t, lending_id=lending_id)
    assert [h["event"] for h in history] == ["message_sent"]


# --- per-partner limits and circuit breakers ------------------------------------------------------


async def test_a_hanging_partner_does_not_delay_deliveries_to_a_healthy_one(engine, gateways):
    """40 requests queued to a partner that never answers (10 s timeout) take at most its own
    `max_in_flight` sends; a message to a healthy partner goes out at once, not after 10 s."""
    hanging = await PartnerServer(hold=asyncio.Event()).start()
    healthy = await PartnerServer().start()
    loop = asyncio.get_running_loop()
    try:
        gw = gateways(engine, {P1: hanging.url, P2: healthy.url}, timeout=10.0,
                      partner_keys={P1: {"max_in_flight": 3}})
        for i in range(40):
            await gw.borrowing.create(details(f"H{i}"), partners=(P1,))
        worker = worker_for(gateways, gw, shutdown_grace=0.0)  # 16 sends at once in all

        async def hanging_holds_its_slots() -> bool:
            return len(hanging.received) >= 3

        await worker.start()
        gw.outbox_wakeup.set()
        await eventually(hanging_holds_its_slots)
        started = loop.time()
        created = await gw.borrowing.create(details("healthy"), partners=(P2,))
        gw.outbox_wakeup.set()

        async def healthy_delivered() -> bool:
            return [r["state"] for r in await rows(engine, outbox_t, request_id=created.request_id)] == ["delivered"]

        await eventually(healthy_delivered, timeout=5.0)
        assert loop.time() - started < 1.0
        assert [g.partner for g in healthy.received] == [P2]
        assert len(hanging.received) == 3  # never more than its limit under way
        states = [r["state"] for r in await rows(engine, outbox_t) if r["partner_agency"] == P1]
        assert states.count("sending") == 3 and states.count("pending") == 37
    finally:
        for worker in gateways.workers:
            await worker.close()
        gateways.workers.clear()
        await hanging.stop()
        await healthy.stop()


async def test_a_failing_partner_is_held_by_its_breaker_shown_to_staff_and_probed(
        engine, partner, gateways, aiohttp_client):
    """After `breaker_threshold` transport failures in a row the partner gets no more requests:
    its due rows fail at once (keeping their own retry schedule) until the cooldown is over;
    then one probe goes, and a confirmation closes the breaker. Staff see it all in the API."""
    partner.reply = lambda request: web.Response(status=503, text="overloaded")
    # The worker's clock moves only by hand: under load a real clock let the 50 ms backoffs of the
    # first round fall due again within the same run_once.
    start, ahead = utc_now(), [timedelta(0)]
    gw = gateways(engine, {P1: partner.url, P2: partner.url}, clock=lambda: start + ahead[0],
                  partner_keys={P1: {"breaker_threshold": 3, "breaker_cooldown_seconds": 60}})
    made = [await gw.borrowing.create(details(f"B{i}"), partners=(P1,)) for i in range(3)]
    for n in (1, 2):
        await gw.borrowing.apply(made[0].request_id, SendMessage(at=utc_now(), by="staff:ann", note=f"n{n}"))
    worker = worker_for(gateways, gw, rng=random.Random(3), max_attempts=50)
    api = await aiohttp_client(build_app(gw))
    auth = {"Authorization": f"Bearer {READER_KEY}"}

    counts = await worker.run_once()  # one row per request: 3 answers of 503 in a row
    assert (counts.claimed, counts.retried, len(partner.headers)) == (3, 3, 3)
    assert worker.breakers.get(P1).state == "open"
    ahead[0] += timedelta(seconds=1)  # every backoff (at most 0.05 s) has passed
    counts = await worker.run_once()
    assert (counts.claimed, counts.retried) == (3, 3) and len(partner.headers) == 3  # not sent
    first_rows = await rows(engine, outbox_t, seq=1)
    assert all(r["attempts"] == 2 and "held by its circuit breaker" in r["last_error"] for r in first_rows)

    response = await api.get("/api/v1/partners", headers=auth)
    assert response.status == 200
    body = await response.json()
    by_agency = {p["agency"]: p for p in body["partners"]}
    circuit = by_agency[P1]["circuit"]
    assert body["held"] == [P1]
    assert (circuit["state"], circuit["consecutive_failures"], circuit["failure_threshold"]) == ("open", 3, 3)
    assert circuit["retry_at"] and circuit["last_error"] == "HTTP 503"
    assert by_agency[P1]["outbox"] == {"pending": 5, "sending": 0}
    assert by_agency[P2]["circuit"]["state"] == "closed" and by_agency[P2]["max_in_flight"] == 4
    assert (await api.get("/api/v1/partners?x=1", headers=auth)).status == 422
    assert (await api.get("/api/v1/partners")).status == 401

    ahead[0] = timedelta(seconds=62)  # the cooldown is over: one probe, which fails
    await worker.run_once()
    assert len(partner.headers) == 4
    assert worker.breakers.get(P1).state == "open"  # open again for another cooldown
    ahead[0] += timedelta(seconds=1)
    await worker.run_once()
    assert len(partner.headers) == 4

    partner.reply = None  # the partner is back
    ahead[0] = timedelta(seconds=124)
    probe, _ = await worker._claim(16)
    assert len(probe) == 1 and "held" not in probe[0]  # half-open: one message at a time
    assert await worker._deliver(probe[0]) == "delivered"
    assert worker.breakers.get(P1).state == "closed"
    await drain(worker, engine)
    assert {r["state"] for r in await rows(engine, outbox_t)} == {"delivered"}
    refs = {r["id"]: r["external_id"] for r in await rows(engine, borrowing_requests_t)}
    got = [(g.kind, g.note) for g in partner.received if g.ref == refs[made[0].request_id]]
    assert got == [("request", None), ("requestingAgencyMessage", "n1"), ("requestingAgencyMessage", "n2")]
    body = await (await api.get("/api/v1/partners", headers=auth)).json()
    assert body["held"] == [] and body["partners"][0]["circuit"]["consecutive_failures"] == 0


async def test_held_rows_still_give_up_after_max_attempts_so_the_rota_moves_on(engine, partner, gateways):
    """The breaker stops requests to a dead partner but not the rows' own schedule: a request
    still moves to the next partner after `max_attempts`, as it would without a breaker."""
    dead = f"http://127.0.0.1:{free_port()}/iso18626"
    gw = gateways(engine, {P1: dead, P2: partner.url}, partner_keys={P1: {"breaker_threshold": 1}})
    created = await gw.borrowing.create(details(), partners=(P1, P2))
    worker = worker_for(gateways, gw, max_attempts=3)
    await drain(worker, engine)
    p1_row, p2_row = await rows(engine, outbox_t)
    assert (p1_row["state"], p1_row["attempts"]) == ("failed", 3)
    assert "held by its circuit breaker" in p1_row["last_error"]
    assert (p2_row["partner_agency"], p2_row["state"]) == (P2, "delivered")
    assert (await rows(engine, borrowing_requests_t, id=created.request_id))[0]["active_partner"] == P2
