"""Tolerance profiles at the endpoint: a partner's profile decides which deviations are repaired."""

from __future__ import annotations

from sqlalchemy import select

from gateway.core import RequestDetails
from gateway.messages import Version, decode, encode, model
from gateway.messages.codes import ReasonForMessage, Status
from gateway.store.models import borrowing_requests_t, general_messages_t, history_t

from support.gateway_helpers import OURS, start_gateway
from support.messages_helpers import NOW, swap_agencies

STRICT, RESHARE, ALMA = "ISIL:DK-STRICT", "ISIL:DK-RESHARE", "ISIL:DK-ALMA"
PARTNERS = [
    {"agency": STRICT, "url": "http://127.0.0.1:9/s"},
    {"agency": RESHARE, "url": "http://127.0.0.1:9/r", "profile": "reshare"},
    {"agency": ALMA, "url": "http://127.0.0.1:9/a", "profile": "alma"},
]
XML = {"Content-Type": "application/xml"}


def sam(ref: str, partner: str, status=Status.WillSupply, reason=ReasonForMessage.RequestResponse, note=None) -> bytes:
    return encode(model.SupplyingAgencyMessage(
        header=model.SupplyingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(partner), requesting_agency_id=model.AgencyId.parse(OURS),
            timestamp=NOW, requesting_agency_request_id=ref),
        message_info=model.MessageInfo(reason_for_message=reason, note=note),
        status_info=model.StatusInfo(status=status, last_change=NOW)), Version.V2017)


async def setup(aiohttp_client, tmp_path, partner):
    client, gateway = await start_gateway(aiohttp_client, f"sqlite+aiosqlite:///{tmp_path / 'g.sqlite3'}", PARTNERS)
    created = await gateway.borrowing.create(RequestDetails(requester="p", pickup_location="Main", title="T"), (partner,))
    await gateway.borrowing.request_confirmed(created.request_id, partner)
    async with gateway.engine.connect() as conn:
        ref = (await conn.execute(select(borrowing_requests_t.c.external_id))).scalar()
    return client, gateway, ref


async def post(client, body):
    response = await client.post("/iso18626", data=body, headers=XML)
    return decode(await response.read()).message


async def test_reshare_profile_accepts_reordered_header_with_a_warning(aiohttp_client, tmp_path):
    client, gateway, ref = await setup(aiohttp_client, tmp_path, RESHARE)
    reply = await post(client, swap_agencies(sam(ref, RESHARE)))
    assert reply.confirmation_header.message_status.value == "OK"
    async with gateway.engine.connect() as conn:
        assert (await conn.execute(select(borrowing_requests_t.c.status))).scalar() == "WILL_SUPPLY"
        warnings = list((await conn.execute(select(history_t.c.detail).where(
            history_t.c.event == "conformance_warning"))).scalars())
    assert warnings and "reorder" in warnings[0]["text"]


async def test_strict_profile_refuses_the_same_deviation(aiohttp_client, tmp_path):
    client, gateway, ref = await setup(aiohttp_client, tmp_path, STRICT)
    reply = await post(client, swap_agencies(sam(ref, STRICT)))
    assert reply.error_data[0].error_type.value == "UnrecognisedDataElement"
    async with gateway.engine.connect() as conn:
        assert (await conn.execute(select(borrowing_requests_t.c.status))).scalar() == "REQUEST_SENT"


async def test_alma_empty_status_notification_is_a_general_message(aiohttp_client, tmp_path):
    client, gateway, ref = await setup(aiohttp_client, tmp_path, ALMA)
    body = sam(ref, ALMA, reason=ReasonForMessage.Notification, note="Please confirm the pickup address")
    body = body.replace(b"<ill:status>WillSupply</ill:status>", b"<ill:status/>")
    reply = await post(client, body)
    assert reply.confirmation_header.message_status.value == "OK"
    async with gateway.engine.connect() as conn:
        texts = list((await conn.execute(select(general_messages_t.c.text))).scalars())
        status = (await conn.execute(select(borrowing_requests_t.c.status))).scalar()
    assert "Please confirm the pickup address" in texts and status == "REQUEST_SENT"
