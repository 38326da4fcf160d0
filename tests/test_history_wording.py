"""History text is for staff (SQLite and PostgreSQL): an edit or a parameter change shows values
as staff would write them, never Python's repr (`datetime.date(...)`, `None`, `Decimal(...)`)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from gateway.core.wording import describe_changes, staff_value

from support.api_helpers import BR, P1, start_api


@pytest.fixture
async def api(db_url, aiohttp_client):
    return await start_api(aiohttp_client, db_url)


def _texts(data, event):
    return [(h["detail"] or {}).get("text", "") for h in data["history"] if h["event"] == event]


async def test_edit_history_shows_values_as_staff_write_them(api):
    rid = (await api.create(partners=[], isbn="9780151446476"))["id"]  # no partner has it: every field may change
    status, data = await api.call("PATCH", f"{BR}/{rid}", json={
        "needed_by": "2030-02-28", "maximum_fee": "12.5", "currency": "EUR", "willing_to_pay": True, "isbn": None,
        "other_identifiers": [{"type": "DOI", "value": "10.1000/182"}]})
    assert status == 200, data
    [text] = _texts(data, "edit")
    assert text == ("edited needed_by: 2030-02-28; maximum_fee: 12.50; currency: EUR; willing_to_pay: yes; "
                    "isbn cleared; other_identifiers: DOI 10.1000/182")
    for python in ("datetime", "Decimal(", "None", "True", "'"):
        assert python not in text


async def test_parameter_history_says_removed_not_none(api):
    rid = (await api.create(partners=[P1]))["id"]
    await api.call("PATCH", f"{BR}/{rid}/parameters", json={"parameters": {"courier": "UPS"}})
    await api.call("PATCH", f"{BR}/{rid}/parameters", json={"parameters": {"courier": None}})
    texts = _texts(await api.request(rid), "set_parameters")
    assert texts == ["parameters courier: UPS", "parameters courier removed"]


def test_staff_value():
    assert staff_value(date(2030, 2, 28)) == "2030-02-28"
    assert staff_value(Decimal("3")) == "3.00"
    assert staff_value(False) == "no"
    assert describe_changes({"a": None, "b": ""}) == "a cleared; b cleared"
