"""kill -9 in the middle of a burst: every accepted message takes effect exactly once, and every
outbox message is eventually delivered.

A real gateway runs as a subprocess on a SQLite file. A partner in this process confirms the
gateway's requests slowly (so deliveries are in flight when the kill comes) and meanwhile
fires a burst of supplyingAgencyMessages at the gateway, resending each until confirmed, as a
real partner does. Halfway through the burst the gateway is killed with SIGKILL and restarted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy import func, select

from gateway.runtime import Gateway
from gateway.config import load_config
from gateway.core import RequestDetails
from gateway.messages import Version, decode, encode, model
from gateway.messages.codes import ReasonForMessage, Status
from gateway.store.models import borrowing_requests_t, general_messages_t, history_t, outbox_t, raw_messages_t

OURS, PARTNER = "ISIL:US-KILL", "ISIL:DK-KILL"
REQUESTS, NOTES = 20, 6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def message(ref: str, n: int, status: Status, reason: ReasonForMessage) -> bytes:
    when = datetime(2026, 11, 28, tzinfo=timezone.utc) + timedelta(seconds=n)
    return encode(model.SupplyingAgencyMessage(
        header=model.SupplyingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(PARTNER), requesting_agency_id=model.AgencyId.parse(OURS),
            timestamp=when, requesting_agency_request_id=ref),
        message_info=model.MessageInfo(reason_for_message=reason, note=f"message {n} for {ref}"),
        status_info=model.StatusInfo(status=status, last_change=when)), Version.V2017)


class Partner:
    """Confirms each request after a pause and records what it got."""

    def __init__(self):
        self.received: list[bytes] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(0.05)
        self.received.append(body)
        inbound = decode(body)
        from gateway.messages import answer

        return web.Response(body=answer(inbound, datetime.now(timezone.utc)), content_type="application/xml")


def start_gateway(config_path: Path) -> subprocess.Popen:
    # Its log goes to a file: a pipe nobody reads would fill up and stall the gateway.
    log = (config_path.parent / "gateway.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--config", str(config_path)],
                            stdout=subprocess.DEVNULL, stderr=log)


def gateway_log(config_path: Path) -> str:
    return (config_path.parent / "gateway.log").read_text(errors="replace")[-3000:]


async def wait_healthy(url: str, proc: subprocess.Popen, config_path: Path) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            assert proc.poll() is None, gateway_log(config_path)
            try:
                async with session.get(url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("gateway did not come up")


async def send_until_confirmed(session: aiohttp.ClientSession, url: str, body: bytes, confirmed: Counter) -> None:
    deadline = asyncio.get_running_loop().time() + 60  # fail, never hang
    while asyncio.get_running_loop().time() < deadline:
        try:
            async with session.post(url, data=body, headers={"Content-Type": "application/xml"}) as response:
                reply = decode(await response.read()).message
                assert reply.confirmation_header.message_status.value == "OK", reply.error_data
                confirmed[body] += 1
                return
        except (aiohttp.ClientError, asyncio.TimeoutError):
            await asyncio.sleep(0.05)  # the gateway is down: try again, as a partner would
    raise AssertionError(f"never confirmed: {body[:200]!r}")


async def outbox_state_counts(db: Path) -> Counter:
    """Outbox rows by state; those not delivered also by their last error."""
    from gateway.store.db import make_engine

    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(outbox_t.c.state, outbox_t.c.last_error))).all()
            return Counter(state if state == "delivered" else f"{state}: {error}" for state, error in rows)
    finally:
        await engine.dispose()


async def test_kill_9_mid_burst_loses_nothing_and_applies_nothing_twice(tmp_path):
    port, partner_port = free_port(), free_port()
    db = tmp_path / "gateway.sqlite3"
    config_path = tmp_path / "gateway.toml"
    config_path.write_text(f"""
[gateway]
agency = "{OURS}"
listen = "127.0.0.1:{port}"
database = "sqlite+aiosqlite:///{db}"
tick_seconds = 3600
outbox_base_delay_seconds = 0.05
outbox_max_delay_seconds = 0.5

[[partners]]
agency = "{PARTNER}"
url = "http://127.0.0.1:{partner_port}/iso18626"
""")
    # Requests created before the gateway process starts: their outbox rows wait for it.
    setup = Gateway.create(load_config(config_path, env={}))
    setup.background = []  # no outbox worker here: the partner is not up yet, the rows wait
    await setup.start()
    for i in range(REQUESTS):
        await setup.borrowing.create(RequestDetails(requester=f"p{i}", pickup_location="Main", title="T"), (PARTNER,))
    async with setup.engine.connect() as conn:
        refs = list((await conn.execute(select(borrowing_requests_t.c.external_id))).scalars())
    await setup.close()

    partner = Partner()
    app = web.Application()
    app.router.add_post("/iso18626", partner.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", partner_port).start()

    bodies = [message(ref, 0, Status.WillSupply, ReasonForMessage.RequestResponse) for ref in refs]
    bodies += [message(ref, n, Status.WillSupply, ReasonForMessage.Notification)
               for ref in refs for n in range(1, NOTES + 1)]
    url = f"http://127.0.0.1:{port}"
    proc = start_gateway(config_path)
    confirmed: Counter = Counter()
    try:
        await wait_healthy(url, proc, config_path)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            # Status messages first (each request must be WILL_SUPPLY before its notes count).
            burst = asyncio.gather(*(send_until_confirmed(session, url + "/iso18626", b, confirmed) for b in bodies[:REQUESTS]))
            await burst
            notes = asyncio.gather(*(send_until_confirmed(session, url + "/iso18626", b, confirmed)
                                     for b in bodies[REQUESTS:]))
            while sum(confirmed.values()) < REQUESTS + len(bodies[REQUESTS:]) // 2:
                await asyncio.sleep(0.005)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed_at = sum(confirmed.values())
            proc = start_gateway(config_path)
            await wait_healthy(url, proc, config_path)
            await notes
            # Resend everything once more: duplicates must be answered from the record.
            await asyncio.gather(*(send_until_confirmed(session, url + "/iso18626", b, confirmed) for b in bodies))
        for _ in range(300):  # the outbox catches up after the restart
            states = await outbox_state_counts(db)
            if states == Counter({"delivered": REQUESTS}):
                break
            await asyncio.sleep(0.05)
        assert states == Counter({"delivered": REQUESTS}), (states, proc.poll(), gateway_log(config_path))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            # Wait without blocking the loop: the partner here must keep answering meanwhile.
            await asyncio.to_thread(proc.wait, 20)
        await runner.cleanup()

    assert 0 < killed_at < len(bodies) + REQUESTS
    check = Gateway.create(load_config(config_path, env={}))
    async with check.engine.connect() as conn:
        raw_in = (await conn.execute(select(func.count()).select_from(raw_messages_t)
                                     .where(raw_messages_t.c.direction == "in"))).scalar()
        will_supply = (await conn.execute(select(func.count()).select_from(history_t).where(
            history_t.c.to_status == "WILL_SUPPLY", history_t.c.from_status != "WILL_SUPPLY"))).scalar()
        notes_kept = list((await conn.execute(select(general_messages_t.c.text)
                                              .where(general_messages_t.c.direction == "in"))).scalars())
        statuses = set((await conn.execute(select(borrowing_requests_t.c.status))).scalars())
        outbox_states = Counter((await conn.execute(select(outbox_t.c.state))).scalars())
    await check.engine.dispose()

    assert raw_in == len(bodies)                       # every accepted message stored once
    assert will_supply == REQUESTS                     # each status change applied once
    assert sorted(notes_kept) == sorted(set(notes_kept)) and len(notes_kept) == REQUESTS * NOTES
    assert statuses == {"WILL_SUPPLY"}
    assert outbox_states == Counter({"delivered": REQUESTS})
    delivered = Counter(decode(b).message.header.requesting_agency_request_id for b in partner.received)
    assert set(delivered) == set(refs)                 # every request reached the partner
    assert max(delivered.values()) <= 2                # at most one resend of a row in flight at the kill
