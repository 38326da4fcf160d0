"""The HMAC replay guard (gateway/transport/replay.py): durable across a restart, and a
signature counts as used only when its request did not fail with a server error."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from gateway.core import RequestDetails
from gateway.messages import Version, decode, encode, model
from gateway.messages.codes import ReasonForMessage, Status
from gateway.store.models import borrowing_requests_t, history_t, seen_signatures_t
from gateway.transport import replay
from gateway.transport.auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, Signed, signature

from support.gateway_helpers import OURS, start_gateway
from support.messages_helpers import NOW

P1 = "ISIL:DK-1"
PARTNERS = [{"agency": P1, "url": "http://127.0.0.1:9/p1", "credentials": {"inbound": {"hmac_secret": "s3cret"}}}]


def signed(body: bytes, stamp: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if stamp is None else stamp))
    return {"Content-Type": "application/xml", TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signature("s3cret", stamp, body)}


def will_supply(ref: str) -> bytes:
    return encode(model.SupplyingAgencyMessage(
        header=model.SupplyingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(P1), requesting_agency_id=model.AgencyId.parse(OURS),
            timestamp=NOW, requesting_agency_request_id=ref),
        message_info=model.MessageInfo(reason_for_message=ReasonForMessage.RequestResponse),
        status_info=model.StatusInfo(status=Status.WillSupply, last_change=NOW)), Version.V2017)


async def _request_sent_to_p1(gateway) -> str:
    created = await gateway.borrowing.create(RequestDetails(requester="p", pickup_location="Main", title="T"),
                                             partners=(P1,))
    await gateway.borrowing.request_confirmed(created.request_id, P1)
    async with gateway.engine.connect() as conn:
        return (await conn.execute(select(borrowing_requests_t.c.external_id))).scalar()


async def _status(gateway) -> str:
    async with gateway.engine.connect() as conn:
        return (await conn.execute(select(borrowing_requests_t.c.status))).scalar()


async def test_a_replay_is_refused_after_a_restart(aiohttp_client, db_url):
    client, gateway = await start_gateway(aiohttp_client, db_url, PARTNERS)
    ref = await _request_sent_to_p1(gateway)
    body = will_supply(ref)
    headers = signed(body)
    first = await client.post("/iso18626", data=body, headers=headers)
    assert first.status == 200
    assert decode(await first.read()).message.confirmation_header.message_status.value == "OK"
    await client.close()  # the server stops; a new one starts on the same database

    client, gateway = await start_gateway(aiohttp_client, db_url, PARTNERS)
    again = await client.post("/iso18626", data=body, headers=headers)
    assert again.status == 401 and "replayed" in await again.text()
    async with gateway.engine.connect() as conn:
        refused = (await conn.execute(select(func.count()).select_from(history_t)
                                      .where(history_t.c.event == "auth_failed"))).scalar()
    assert refused == 1


async def test_an_exact_retry_of_a_request_that_failed_is_a_new_attempt(aiohttp_client, db_url):
    client, gateway = await start_gateway(aiohttp_client, db_url, PARTNERS)
    ref = await _request_sent_to_p1(gateway)
    body = will_supply(ref)
    headers = signed(body)
    receive = gateway.borrowing.receive_supplier_message
    calls = []

    async def fails_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        return await receive(*args, **kwargs)

    gateway.borrowing.receive_supplier_message = fails_once
    before = await _status(gateway)
    failed = await client.post("/iso18626", data=body, headers=headers)
    assert failed.status == 500
    assert await _status(gateway) == before
    retry = await client.post("/iso18626", data=body, headers=headers)  # the same bytes and headers
    assert retry.status == 200, await retry.text()
    assert decode(await retry.read()).message.confirmation_header.message_status.value == "OK"
    assert await _status(gateway) == "WILL_SUPPLY"
    # Now it succeeded: the same bytes again are a replay.
    replayed = await client.post("/iso18626", data=body, headers=headers)
    assert replayed.status == 401 and "replayed" in await replayed.text()
    assert len(calls) == 2


async def test_expired_signatures_are_pruned_and_no_longer_count(aiohttp_client, db_url):
    client, gateway = await start_gateway(aiohttp_client, db_url, PARTNERS)
    now = datetime.now(timezone.utc)
    old = Signed("sha256=" + "0" * 64, int(time.time()) - 3600)
    fresh = Signed("sha256=" + "1" * 64, int(time.time()))
    failed = Signed("sha256=" + "2" * 64, int(time.time()))
    await gateway.writer.run(replay.remember_step(old, P1, 200, now))
    await gateway.writer.run(replay.remember_step(fresh, P1, 200, now))
    await gateway.writer.run(replay.remember_step(failed, P1, 503, now))
    async with gateway.engine.connect() as conn:
        assert await conn.run_sync(replay.outcome_step(old, now)) is None  # expired: outside the window
        assert await conn.run_sync(replay.outcome_step(fresh, now)) == 200
    # A success is never overwritten by a later failure; a failure is by a later success.
    await gateway.writer.run(replay.remember_step(fresh, P1, 500, now))
    await gateway.writer.run(replay.remember_step(failed, P1, 200, now))
    async with gateway.engine.connect() as conn:
        assert await conn.run_sync(replay.outcome_step(fresh, now)) == 200
        assert await conn.run_sync(replay.outcome_step(failed, now)) == 200
    await gateway.prune_seen_signatures()  # also the timer's job (it may have run already)
    async with gateway.engine.connect() as conn:
        left = set((await conn.execute(select(seen_signatures_t.c.signature))).scalars())
    assert left == {fresh.signature, failed.signature}
    assert replay.expires_at(fresh) - datetime.fromtimestamp(fresh.timestamp, timezone.utc) == timedelta(seconds=300)
