"""One validation for staff and patrons (SQLite and PostgreSQL): the pickup list, something to
find the item by, a maximum fee with its currency and willing_to_pay, and a needed-by date not in
the past, on the staff create / edit / retry and the patron JSON and HTML paths alike. A refused
form changes nothing."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from gateway.messages.codes import Status

from support.api_helpers import BR, P1, error_code, start_api

PICKUPS = ["Main desk", "Law library"]
PAST = (date.today() - timedelta(days=3)).isoformat()


@pytest.fixture
async def api(db_url, aiohttp_client):
    return await start_api(aiohttp_client, db_url, intake={"pickup_locations": PICKUPS})


def staff(**fields):
    return {"title": "T", "requester": "p", "pickup_location": "Main desk", "partners": [P1], **fields}


def patron(**fields):
    return {"title": "T", "patron_id": "p", "pickup_location": "Main desk", **fields}


BROKEN = [
    ({"pickup_location": "Nowhere Library"}, "pickup_location", "must be one of: Main desk, Law library"),
    ({"title": None}, "title", "a title is required"),
    ({"needed_by": PAST}, "needed_by", "is in the past"),
    ({"maximum_fee": "10", "willing_to_pay": True}, "currency", "is required with a maximum fee"),
    ({"maximum_fee": "10", "currency": "EUR"}, "willing_to_pay", "must be true when a maximum fee is given"),
]


async def _count(api):
    status, body = await api.get(BR)
    return body["total"]


@pytest.mark.parametrize("fields, field, message", BROKEN)
async def test_staff_create_follows_the_form_rules(api, fields, field, message):
    status, data = await api.post(BR, staff(**fields))
    assert status == 422 and error_code(data) == "invalid_field", data
    assert data["error"]["field"] == field and message in data["error"]["message"]
    assert await _count(api) == 0


@pytest.mark.parametrize("fields, field, message", BROKEN[:3])  # the patron form has no fee fields
async def test_patron_json_follows_the_same_rules(api, fields, field, message):
    status, data = await api.post("/api/v1/patron-requests", patron(**fields))
    assert status == 422 and data["error"]["field"] == field and message in data["error"]["message"], data
    assert await _count(api) == 0


async def test_patron_html_form_shows_the_rule(api):
    response = await api.client.post("/openurl/submit", data=patron(pickup_location="Nowhere Library"))
    assert response.status == 422
    assert "Pickup location: must be one of: Main desk, Law library" in await response.text()


async def test_an_identifier_is_enough_to_find_the_item(api):
    status, data = await api.post(BR, staff(title=None, oclc_number="12345"))
    assert status == 201, data
    status, data = await api.post("/api/v1/patron-requests", patron(title=None, isbn="9780151446476"))
    assert status == 201, data


async def test_edit_and_retry_follow_the_rules(api):
    data = (await api.post(BR, staff(isbn="9780151446476", partners=[])))[1]  # no partner has it yet
    rid, version = data["id"], data["version"]
    for body, field in (({"pickup_location": "Nowhere Library"}, "pickup_location"),
                        ({"title": None, "isbn": None}, "title"), ({"needed_by": PAST}, "needed_by"),
                        ({"maximum_fee": "5.00"}, "currency")):
        status, error = await api.call("PATCH", f"{BR}/{rid}", json=body)
        assert status == 422 and error["error"]["field"] == field, error
    after = await api.request(rid)
    assert after["version"] == version and after["pickup_location"] == "Main desk" and after["title"] == "T"
    status, data = await api.call("PATCH", f"{BR}/{rid}", json={"title": None})  # the ISBN still finds it
    assert status == 200, data
    data = (await api.post(BR, staff()))[1]
    rid = data["id"]
    await api.confirmed(rid)
    await api.supplier(data, Status.RetryPossible, reason_retry="NotFoundAsCited")
    status, error = await api.action(rid, "retry", {"changes": {"pickup_location": "Nowhere Library"}})
    assert status == 422 and error["error"]["field"] == "changes.pickup_location", error
    assert (await api.request(rid))["status"] == "RETRY_POSSIBLE"


async def test_a_fee_goes_out_with_its_own_currency(api):
    status, data = await api.post(BR, staff(maximum_fee="7.50", currency="EUR", willing_to_pay=True))
    assert status == 201, data
    from sqlalchemy import select

    from gateway.store.models import outbox_t
    async with api.gateway.engine.connect() as conn:
        body = (await conn.execute(select(outbox_t.c.body).where(outbox_t.c.request_id == data["id"]))).scalar_one()
    text = body.decode()
    assert "EUR" in text and "USD" not in text and "7.50" in text


def test_rules_unit():
    from gateway.core import InvalidInput, RequestDetails
    from gateway.core.form_rules import FormRules

    today = datetime.now(timezone.utc).date()
    rules = FormRules(("A",))
    with pytest.raises(InvalidInput):
        rules.check(RequestDetails(requester="p", pickup_location="A"), today=today)
    old = RequestDetails(requester="p", pickup_location="B", title="T", needed_by=today - timedelta(days=1))
    rules.check(old, today=today, changed={"title"})  # an old request's other fields may still be edited
