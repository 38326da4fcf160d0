"""Hostile and broken input at the ISO endpoint of a real gateway (default 1 MB body limit).

Each case must get the right HTTP status or confirmation within a second, change nothing in
the database, and leave the server up.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from gateway.core import RequestDetails
from gateway.messages import Version, decode, encode, model
from gateway.messages.codes import ReasonForMessage, Status
from gateway.store.models import borrowing_requests_t, lending_requests_t, outbox_t, raw_messages_t

from support.gateway_helpers import OURS, start_gateway
from support.messages_helpers import NOW

PARTNER = "ISIL:DK-BAD"
XML = {"Content-Type": "application/xml"}
NS = b"http://illtransactions.org/2013/iso18626"

BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
                  + b"".join(b'<!ENTITY a%d "%s">' % (i + 1, (b"&a%d;" % i if i else b"&a;") * 10) for i in range(8))
                  + b']><ill:ISO18626Message xmlns:ill="' + NS + b'" ill:version="1.2">&a8;</ill:ISO18626Message>')
XXE = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       b'<ill:ISO18626Message xmlns:ill="' + NS + b'" ill:version="1.2">&x;</ill:ISO18626Message>')


def sam(ref: str, status=Status.Loaned) -> bytes:
    return encode(model.SupplyingAgencyMessage(
        header=model.SupplyingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(PARTNER), requesting_agency_id=model.AgencyId.parse(OURS),
            timestamp=NOW, requesting_agency_request_id=ref),
        message_info=model.MessageInfo(reason_for_message=ReasonForMessage.StatusChange),
        status_info=model.StatusInfo(status=status, last_change=NOW)), Version.V2017)


def deep(levels: int) -> bytes:
    return (b'<ill:ISO18626Message xmlns:ill="' + NS + b'" ill:version="1.2"><ill:request>'
            + b"<ill:x>" * levels + b"</ill:x>" * levels + b"</ill:request></ill:ISO18626Message>")


CASES = {
    "not xml": (b"this is not xml at all", 200, "BadlyFormedMessage"),
    "wrong root": (b'<foo xmlns="urn:x"/>', 200, "BadlyFormedMessage"),
    "billion laughs": (BILLION_LAUGHS, 200, "BadlyFormedMessage"),
    "xxe": (XXE, 200, "BadlyFormedMessage"),
    "10 MB body": (b"<a>" + b"x" * (10 * 1024 * 1024) + b"</a>", 413, None),
    "10,000-deep nesting": (deep(10_000), 200, "BadlyFormedMessage"),
    "invalid utf-8": (sam("BR-X").replace(b"BR-X", b"BR-\xff\xfe"), 200, "BadlyFormedMessage"),
    "unknown partner": (sam("BR-X").replace(b"DK-BAD", b"DK-WHO"), 200, "UnrecognisedDataValue"),
    "unknown request id": (sam("BR-NOT-THERE"), 200, "UnrecognisedDataValue"),
    "another agency's request": (sam("BR-X").replace(b"US-NjP", b"US-OTHER"), 200, "UnrecognisedDataValue"),
}


@pytest.fixture
async def gw(aiohttp_client, tmp_path):
    client, gateway = await start_gateway(aiohttp_client, f"sqlite+aiosqlite:///{tmp_path / 'g.sqlite3'}",
                                          [{"agency": PARTNER, "url": "http://127.0.0.1:9/p"}])
    created = await gateway.borrowing.create(RequestDetails(requester="p", pickup_location="Main", title="T"), (PARTNER,))
    await gateway.borrowing.request_confirmed(created.request_id, PARTNER)
    return client, gateway


async def snapshot(gateway) -> tuple:
    async with gateway.engine.connect() as conn:
        request = (await conn.execute(select(borrowing_requests_t.c.status, borrowing_requests_t.c.version))).one()
        counts = [(await conn.execute(select(func.count()).select_from(t))).scalar()
                  for t in (lending_requests_t, outbox_t)]
    return tuple(request), tuple(counts)


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_input_is_answered_quickly_and_changes_nothing(gw, case):
    client, gateway = gw
    data, status, error_type = CASES[case]
    before = await snapshot(gateway)
    started = time.perf_counter()
    response = await client.post("/iso18626", data=data, headers=XML)
    body = await response.read()
    assert time.perf_counter() - started < 1.0
    assert response.status == status
    if error_type:
        reply = decode(body).message
        assert reply.confirmation_header.message_status.value == "ERROR"
        assert reply.error_data[0].error_type.value == error_type
    assert await snapshot(gateway) == before
    assert (await client.get("/healthz")).status == 200


async def test_illegal_transition_is_refused_and_recorded_without_a_state_change(gw):
    client, gateway = gw
    async with gateway.engine.connect() as conn:
        ref = (await conn.execute(select(borrowing_requests_t.c.external_id))).scalar()
    before = await snapshot(gateway)
    reply = decode(await (await client.post("/iso18626", data=sam(ref, Status.Overdue), headers=XML)).read()).message
    assert reply.error_data[0].error_type.value == "UnrecognisedDataValue"
    assert "refused in status REQUEST_SENT" in reply.error_data[0].error_value
    assert await snapshot(gateway) == before
    async with gateway.engine.connect() as conn:  # the refused message is kept for the audit trail
        assert (await conn.execute(select(func.count()).select_from(raw_messages_t))).scalar() == 1
