"""`GET /api/v1/raw-messages/{id}`: a partner's message, verbatim, but never as a document a
browser would render (SQLite and PostgreSQL, real gateway, the message arriving on the ISO endpoint).

A partner controls every byte of what it sends. Served as application/xml, a
`<?xml-stylesheet?>` processing instruction in it makes a browser fetch and run the partner's
stylesheet in the gateway's origin; served as text/plain under a Content-Security-Policy that
allows nothing, the bytes are only shown."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from gateway.messages import Version, decode, encode, model
from gateway.messages.codes import ServiceType

from support.api_helpers import OURS, P1, XML, start_api

LR = "/api/v1/lending-requests"
STYLESHEET = b'<?xml-stylesheet type="text/xsl" href="http://partner.invalid/steal.xsl"?>'


@pytest.fixture
async def api(db_url, aiohttp_client):
    return await start_api(aiohttp_client, db_url)


def request_with_stylesheet(ref: str) -> bytes:
    message = model.Request(
        header=model.RequestHeader(supplying_agency_id=model.AgencyId.parse(OURS),
                                   requesting_agency_id=model.AgencyId.parse(P1),
                                   timestamp=datetime.now(timezone.utc).replace(microsecond=0),
                                   requesting_agency_request_id=ref),
        bibliographic_info=model.BibliographicInfo(title="The Name of the Rose"),
        service_info=model.ServiceInfo(service_type=ServiceType.Loan))
    data = encode(message, Version.V2017)
    declaration_end = data.index(b"?>") + 2
    return data[:declaration_end] + b"\n" + STYLESHEET + data[declaration_end:]


async def test_raw_message_is_served_as_inert_text(api):
    sent = request_with_stylesheet("RAW-1")
    response = await api.client.post("/iso18626", data=sent, headers=XML)
    assert decode(await response.read()).message.confirmation_header.message_status.value == "OK"
    status, listing = await api.get(f"{LR}?q=RAW-1")
    status, history = await api.get(f"{LR}/{listing['items'][0]['id']}/history")
    [raw_id] = [h["raw_message_id"] for h in history["history"] if h["raw_message_id"] is not None]

    response = await api.client.get(f"/api/v1/raw-messages/{raw_id}", headers={"Authorization": "Bearer reader-key-0001"})
    assert response.status == 200
    assert await response.read() == sent  # verbatim, processing instruction and all
    assert response.content_type == "text/plain"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    policy = {part.strip() for part in response.headers["Content-Security-Policy"].split(";")}
    assert {"default-src 'none'", "sandbox"} <= policy
    assert response.headers["Content-Disposition"] == f'inline; filename="raw-message-{raw_id}.xml"'


async def test_unknown_raw_message_is_404(api):
    status, data = await api.get("/api/v1/raw-messages/999999")
    assert status == 404 and data["error"]["code"] == "not_found"
