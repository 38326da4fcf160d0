"""Edits after sending (SQLite and PostgreSQL): once a partner has the request, a change to a
field the request carries is refused with a 409 that says why (ISO 18626 cannot amend a sent
request) and changes nothing; local fields still change; a change made while no partner has the
request goes out with the next request."""

from __future__ import annotations

import pytest
from lxml import etree
from sqlalchemy import select

from gateway.store.models import outbox_t

from support.api_helpers import BR, P1, P2, error_code, start_api

NS = {"ill": "http://illtransactions.org/2013/iso18626"}


@pytest.fixture
async def api(db_url, aiohttp_client):
    return await start_api(aiohttp_client, db_url)


async def _outbox(api, rid):
    async with api.gateway.engine.connect() as conn:
        rows = await conn.execute(select(outbox_t.c.body).where(outbox_t.c.request_id == rid).order_by(outbox_t.c.id))
        return [r[0] for r in rows]


async def test_changing_the_format_at_request_sent_is_refused_and_changes_nothing(api):
    rid = (await api.create(partners=[P1, P2]))["id"]
    await api.confirmed(rid)
    before = await api.request(rid)
    assert before["status"] == "REQUEST_SENT" and before["service_type"] == "Loan"
    sent = await _outbox(api, rid)
    status, data = await api.call("PATCH", f"{BR}/{rid}", json={"format": "Digital"})
    assert status == 409 and error_code(data) == "illegal_transition", data
    message = data["error"]["message"]
    assert "format" in message and P1 in message and "ISO 18626" in message and "cancel" in message
    after = await api.request(rid)
    assert after["service_type"] == "Loan" and after["format"] == "Physical"
    assert after["version"] == before["version"] and after["history"] == before["history"]
    assert await _outbox(api, rid) == sent


async def test_a_local_field_may_still_change(api):
    rid = (await api.create(partners=[P1]))["id"]
    await api.confirmed(rid)
    status, data = await api.call("PATCH", f"{BR}/{rid}", json={"pickup_location": "Law library",
                                                               "format": "Physical"})  # format unchanged
    assert status == 200 and data["pickup_location"] == "Law library", data


async def test_a_change_before_any_partner_has_the_request_goes_out_with_it(api):
    rid = (await api.create(partners=[]))["id"]
    status, data = await api.call("PATCH", f"{BR}/{rid}", json={"format": "Digital"})
    assert status == 200 and data["service_type"] == "Copy", data
    status, data = await api.post(f"{BR}/{rid}/rota", {"op": "add", "agency": P1})
    assert status == 200, data
    status, data = await api.action(rid, "locate")
    assert status == 200 and data["active_partner"] == P1, data
    [body] = await _outbox(api, rid)
    assert [e.text for e in etree.fromstring(body).iterfind(".//ill:serviceType", NS)] == ["Copy"]
