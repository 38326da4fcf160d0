"""The Received items tab on a real gateway (SQLite and PostgreSQL): every receive records who
received what and when, with the note; a receive without barcodes still records one item."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gateway.messages.codes import Status

from support.api_helpers import BR, P1, start_api


@pytest.fixture
async def api(db_url, aiohttp_client):
    return await start_api(aiohttp_client, db_url)


async def _shipped(api):
    request = await api.create(partners=[P1])
    await api.confirmed(request["id"])
    due = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=28)
    await api.supplier(request, Status.Loaned, due=due)
    return request["id"], due


async def test_receive_with_items_records_actor_note_time_and_due_date(api):
    rid, due = await _shipped(api)
    status, data = await api.action(rid, "receive", {"items": ["3901501", "3901502"], "note": "in good shape"})
    assert status == 200, data
    items = data["received_items"]
    assert [i["barcode"] for i in items] == ["3901501", "3901502"]
    for item in items:
        assert item["actor"] == "staff:ann"
        assert item["note"] == "in good shape"
        assert item["received_at"] is not None
        assert datetime.fromisoformat(item["due_date"]) == due
    status, tab = await api.get(f"{BR}/{rid}/received-items")
    assert status == 200 and tab["received_items"] == items


async def test_receive_without_items_records_one_received_item(api):
    rid, _ = await _shipped(api)
    status, data = await api.action(rid, "receive", {"note": "no barcode on it"})
    assert status == 200, data
    assert len(data["received_items"]) == 1
    item = data["received_items"][0]
    assert item["barcode"] is None and item["actor"] == "staff:ann" and item["note"] == "no barcode on it"
    assert item["received_at"] is not None


async def test_receive_with_no_body_at_all_records_one_item(api):
    rid, _ = await _shipped(api)
    status, data = await api.action(rid, "receive")
    assert status == 200, data
    assert [(i["barcode"], i["actor"], i["note"]) for i in data["received_items"]] == [(None, "staff:ann", None)]
