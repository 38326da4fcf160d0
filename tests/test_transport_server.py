"""The ISO endpoint of a real gateway on loopback: transport faults, routing, authentication."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from gateway.core import RequestDetails
from gateway.messages import Version, decode, encode, model
from gateway.messages.codes import ReasonForMessage, Status
from gateway.store.models import borrowing_requests_t, history_t
from gateway.transport.auth import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature

from support.gateway_helpers import OURS, start_gateway
from support.messages_helpers import NOW, sample_requesting_message

P1, P2, P3 = "ISIL:DK-1", "ISIL:DK-2", "ISIL:DK-3"
PARTNERS = [
    {"agency": P1, "url": "http://127.0.0.1:9/p1", "credentials": {"inbound": {"hmac_secret": "s3cret"}}},
    {"agency": P2, "url": "http://127.0.0.1:9/p2", "version": "2021",
     "credentials": {"inbound": {"bearer_token": "tok-2", "account_id": "acct", "security_code": "code"}}},
    {"agency": P3, "url": "http://127.0.0.1:9/p3", "credentials": {"inbound": {"allow_ips": ["10.0.0.0/8"]}}},
]
XML = {"Content-Type": "application/xml"}


@pytest.fixture
async def gw(aiohttp_client, tmp_path):
    return await start_gateway(aiohttp_client, f"sqlite+aiosqlite:///{tmp_path / 'gw.sqlite3'}", PARTNERS,
                               body_limit=64 * 1024)


def signed(body: bytes, secret="s3cret", stamp=None) -> dict[str, str]:
    stamp = str(int(stamp if stamp is not None else time.time()))
    return {**XML, TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: signature(secret, stamp, body)}


def sam(ref: str, partner: str = P1, status=Status.WillSupply, version=Version.V2017, requester=OURS) -> bytes:
    return encode(model.SupplyingAgencyMessage(
        header=model.SupplyingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(partner), requesting_agency_id=model.AgencyId.parse(requester),
            timestamp=NOW, requesting_agency_request_id=ref),
        message_info=model.MessageInfo(reason_for_message=ReasonForMessage.RequestResponse),
        status_info=model.StatusInfo(status=status, last_change=NOW)), version)


async def _history(gateway, event):
    async with gateway.engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(history_t).where(history_t.c.event == event))]


async def test_healthz(gw):
    client, _ = gw
    response = await client.get("/healthz")
    assert response.status == 200 and (await response.json())["agency"] == OURS


async def test_transport_faults_are_http_errors(gw):
    client, _ = gw
    assert (await client.get("/iso18626")).status == 405
    assert (await client.post("/iso18626", data=b"{}", headers={"Content-Type": "application/json"})).status == 415
    big = b"<x>" + b"a" * 100_000 + b"</x>"
    assert (await client.post("/iso18626", data=big, headers=XML)).status == 413


async def test_not_xml_gets_http_200_with_badly_formed_confirmation(gw):
    client, _ = gw
    response = await client.post("/iso18626", data=b"<<<", headers=XML)
    assert response.status == 200
    reply = decode(await response.read()).message
    assert reply.error_data[0].error_type.value == "BadlyFormedMessage"


async def test_supplier_message_is_applied_with_valid_hmac(gw):
    client, gateway = gw
    created = await gateway.borrowing.create(
        RequestDetails(requester="p", pickup_location="Main", title="T"), partners=(P1,))
    await gateway.borrowing.request_confirmed(created.request_id, P1)
    async with gateway.engine.connect() as conn:
        ref = (await conn.execute(select(borrowing_requests_t.c.external_id))).scalar()
    body = sam(ref)
    response = await client.post("/iso18626", data=body, headers=signed(body))
    reply = decode(await response.read()).message
    assert reply.confirmation_header.message_status.value == "OK"
    async with gateway.engine.connect() as conn:
        assert (await conn.execute(select(borrowing_requests_t.c.status))).scalar() == "WILL_SUPPLY"


async def test_missing_wrong_replayed_or_stale_signature_is_401_and_audited(gw):
    client, gateway = gw
    body = sam("BR-X")
    assert (await client.post("/iso18626", data=body, headers=XML)).status == 401
    assert (await client.post("/iso18626", data=body, headers=signed(body, secret="wrong"))).status == 401
    assert (await client.post("/iso18626", data=body, headers=signed(body, stamp=time.time() - 3600))).status == 401
    headers = signed(body)
    first = await client.post("/iso18626", data=body, headers=headers)
    assert first.status == 200  # ERROR confirmation: no such request, but authenticated
    replay = await client.post("/iso18626", data=body, headers=headers)
    assert replay.status == 401 and "replayed" in await replay.text()
    assert len(await _history(gateway, "auth_failed")) == 4


async def test_bearer_token_and_account_checks(gw):
    client, gateway = gw
    message = sample_requesting_message()
    message.header.requesting_agency_id = model.AgencyId.parse(P2)
    message.header.supplying_agency_id = model.AgencyId.parse(OURS)
    body = encode(message, Version.V2021)
    assert (await client.post("/iso18626", data=body, headers={**XML, "Authorization": "Bearer nope"})).status == 401
    response = await client.post("/iso18626", data=body, headers={**XML, "Authorization": "Bearer tok-2"})
    reply = decode(await response.read()).message
    assert response.status == 200 and reply.error_data[0].error_type.value == "UnrecognisedDataValue"
    assert "requestingAgencyAuthentication" in reply.error_data[0].error_value


async def test_ip_allow_list_refuses_loopback(gw):
    client, _ = gw
    body = sam("BR-X", partner=P3)
    assert (await client.post("/iso18626", data=body, headers=XML)).status == 403


async def test_unknown_partner_and_spoofed_agency_are_refused(gw):
    client, gateway = gw
    body = sam("BR-X", partner="ISIL:XX-STRANGER")
    reply = decode(await (await client.post("/iso18626", data=body, headers=XML)).read()).message
    assert "not a partner of this gateway" in reply.error_data[0].error_value
    # P3 claims to be P1 without P1's signature: the transport check of P1 refuses it.
    spoof = sam("BR-X", partner=P1)
    assert (await client.post("/iso18626", data=spoof, headers={**XML, "Authorization": "Bearer tok-2"})).status == 401
    assert await _history(gateway, "unknown_partner")


async def test_message_for_another_agencys_request_is_refused(gw):
    client, _ = gw
    body = sam("BR-X", requester="ISIL:XX-OTHER")
    reply = decode(await (await client.post("/iso18626", data=body, headers=signed(body))).read()).message
    assert "is not this gateway's agency" in reply.error_data[0].error_value
